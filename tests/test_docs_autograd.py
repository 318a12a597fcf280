"""Run the snippets of docs/autograd.md and the docstring examples of the autograd core.

docs/autograd.md promises that its numbers are the code's: this test runs every ``>>>``
line in it (doctest.testfile). The second test runs the doctests of the modules of the
autograd core and the core functional ops (doctest.testmod on each).
"""
from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

CORE_MODULES = [
    "tinyvision.autograd",
    "tinyvision.backend",
    "tinyvision.functional.arithmetic",
    "tinyvision.functional.elementwise",
    "tinyvision.functional.activation",
    "tinyvision.functional.reduction",
    "tinyvision.functional.shape",
    "tinyvision.functional.loss",
    "tinyvision.testing.gradcheck",
    "tinyvision.testing.crosscheck",
    "tinyvision.testing.strategies",
    "tinyvision.testing.opcases",
    "tinyvision.testing.tolerances",
]


@pytest.mark.parametrize("name", ["autograd.md"])
def test_docs_snippets_run(name):
    result = doctest.testfile(str(DOCS / name), module_relative=False, optionflags=FLAGS, verbose=False)
    assert result.attempted > 0, f"no snippets found in docs/{name}"
    assert result.failed == 0, f"{result.failed} of {result.attempted} snippets in docs/{name} failed (see output above)"


@pytest.mark.parametrize("module", CORE_MODULES)
def test_module_doctests_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=FLAGS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests in {module} failed (see output above)"
