"""docs/errors.md: every Python block runs as written, and the promises it lists name real tests."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "errors.md"


def test_errors_doc_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/errors.md block {k}", "exec"), {})


def test_errors_doc_cites_existing_tests():
    cited = set(re.findall(r"`(tests/[\w/]+\.py)`", DOC.read_text()))
    assert cited
    for path in cited:
        assert (ROOT / path).exists(), path
