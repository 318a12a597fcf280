"""CuPy GPU kernels (same signatures as kernels/cpu)."""
