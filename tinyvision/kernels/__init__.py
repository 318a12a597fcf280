"""Raw-array kernels, no autograd.

``cpu/`` holds Numba kernels, ``gpu/`` CuPy ones with the same signatures. Each heavy op has a
plain-loop *reference* kernel a learner can read and a *fast* one with the same signature, in
that order in ``cpu/<op>.py``; one dispatch, :func:`tinyvision.kernels.dispatch.kernel`, picks
the implementation (``impl``) and the device (the array module of its inputs). Its docstring
lists every heavy op with its reference, fast and GPU kernels.
"""
