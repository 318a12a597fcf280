"""Raw-array kernels, no autograd.

``cpu/`` holds Numba kernels, ``gpu/`` CuPy ones with the same signatures. Each heavy op has a
plain-loop *reference* kernel a learner can read and a *fast* one; a single dispatch function
per kernel picks the implementation from the array module of its inputs.
"""
