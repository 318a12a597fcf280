"""The project's one tolerance table.

* "float32" / "float64": agreement of a forward value or gradient with PyTorch's (same math in
  a different order of operations: round-off only).
* "gradcheck": analytic vs central-difference gradients in float64 (eps = 1e-6: truncation
  error ~eps^2, round-off ~1e-16/eps, so ~1e-10 relative; the bounds leave room for
  ill-conditioned points). PyTorch's torch.autograd.gradcheck uses the same defaults.
"""
import numpy as np

TOLERANCES = {
    "float32": {"rtol": 1e-4, "atol": 1e-5},
    "float64": {"rtol": 1e-10, "atol": 1e-10},
    "gradcheck": {"eps": 1e-6, "rtol": 1e-3, "atol": 1e-5},
}


def tolerance(dtype) -> dict:
    """rtol/atol for comparing results computed in ``dtype`` with a reference."""
    return dict(TOLERANCES["float64" if np.dtype(dtype) == np.float64 else "float32"])
