"""The README's code and the quickstart example run as written."""
import pathlib
import re
import runpy

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example saves weights.npz: keep it out of the tree
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README should show Python code"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_commands_match_ci():
    text = (ROOT / "README.md").read_text()
    assert "pip install -e '.[test]'" in text and "python -m pytest" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[test]'" in ci and "python -m pytest" in ci


def test_quickstart_learns():
    module = runpy.run_path(str(ROOT / "examples" / "quickstart.py"))
    assert module["main"]() > 0.95
