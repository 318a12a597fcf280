"""docs/ops.md: every Python block runs as written."""
import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "ops.md"


def test_ops_doc_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/ops.md block {k}", "exec"), {})
