"""docs/demo.md's Python snippet runs as written (with a tiny stand-in task, to stay fast)."""
import os
import pathlib
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _box_task import BoxTask  # noqa: E402

import tinyvision.tasks  # noqa: E402

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "demo.md"


def test_demo_doc_snippet_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tinyvision.tasks, "get_task", lambda name: BoxTask())
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    exec(compile(block, str(DOC), "exec"), {})
    accuracy, checkpoint = capsys.readouterr().out.split()
    assert 0.0 <= float(accuracy) <= 1.0
    assert checkpoint.endswith("runs/localize/checkpoint.safetensors")
    assert (tmp_path / "runs" / "localize" / "log.jsonl").exists()
