"""docs/tour.md: every snippet runs and prints what the page says; every figure it shows exists."""
import doctest
import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "tour.md"


def test_tour_snippets_run():
    result = doctest.testfile(str(DOC), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 20
    assert result.failed == 0, f"{result.failed} of {result.attempted} snippets in docs/tour.md failed"


def test_tour_figures_exist():
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", DOC.read_text()):
        assert (DOC.parent / path).exists(), path
