"""Tools to test differentiable code — tinyvision's own tests use them, and so can you.

* :func:`gradcheck` — compare analytic gradients with float64 central differences.
* :func:`crosscheck` — compare a tinyvision function with a PyTorch one, forward and gradients.
* :func:`compare_modules` — compare a tinyvision model with a PyTorch one layer by layer.
* :mod:`tinyvision.testing.strategies` — Hypothesis strategies for shapes and arrays
  (imported on use: Hypothesis is a test dependency, not a runtime one).
* :mod:`tinyvision.testing.opcases` — table-driven op tests: one ``OpCase`` line per op,
  gradchecked and cross-checked against PyTorch (also imported on use).
* :data:`TOLERANCES` — the one tolerance table the project's tests use.
"""
from .gradcheck import GradcheckError, gradcheck
from .crosscheck import CrosscheckError, crosscheck
from .tolerances import TOLERANCES, tolerance
from .compare import ComparisonReport, compare_modules

__all__ = ["gradcheck", "GradcheckError", "crosscheck", "CrosscheckError", "TOLERANCES", "tolerance",
           "compare_modules", "ComparisonReport"]
