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


def _bash_blocks():
    return re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_first_command_installs_and_runs_the_demo():
    first, second = _bash_blocks()[:2]
    assert first.strip() == ("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && "
                             "tinyvision demo --quick --out report")
    assert "pip install -e '.[test]' && python -m pytest -q" in second


def test_readme_tinyvision_commands_parse():
    """Every `tinyvision ...` line in the README is accepted by the parser (flags, choices)."""
    import shlex

    from tinyvision.cli import build_parser

    lines = [line.split("#")[0].strip() for block in _bash_blocks() for line in block.splitlines()]
    commands = [line for line in lines if line.startswith("tinyvision ")]
    commands += [line[line.index("tinyvision "):] for line in lines if "&& tinyvision " in line]
    assert len(commands) >= 7
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert getattr(args, "func", None) is not None, command


def test_readme_images_exist():
    text = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images, "the README should show a demo picture"
    for image in images:
        assert (ROOT / image).is_file(), image
