"""Run every ``>>>`` snippet of docs/retinanet.md (the walk through the model has its numbers)."""
import doctest
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_retinanet_walkthrough_snippets_run():
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testfile(str(DOCS / "retinanet.md"), module_relative=False, optionflags=flags)
    assert result.attempted > 20, "docs/retinanet.md lost its snippets"
    assert result.failed == 0, f"{result.failed} of {result.attempted} snippets of docs/retinanet.md failed"


def test_detection_docstring_examples_run():
    import tinyvision.models.detection.fpn as fpn

    result = doctest.testmod(fpn, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
