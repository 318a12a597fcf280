"""docs/models.md: its Python blocks run, in order, in one namespace; its pasted tables agree
with the reports those blocks compute (row names, shapes and verdicts; the first divergence;
and, where a row differs by more than round-off, its size)."""
import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "models.md"
ROW = re.compile(r"^(\S+)\s+(\([\d, ]*\))\s+(\S+)\s+(\S+)\s+(ok|DIFFERS|-)\s*$")


def _tables(text):
    """{variable name: [lines of the text block after its <!-- table: name --> marker]}"""
    return {name: body.splitlines()
            for name, body in re.findall(r"<!-- table: (\w+) -->\n```text\n(.*?)```", text, flags=re.S)}


def test_models_doc_runs_and_its_tables_are_true(capsys):
    pytest.importorskip("torchvision")
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 6
    namespace = {}
    for k, block in enumerate(blocks):
        exec(compile(block, f"docs/models.md block {k}", "exec"), namespace)
    tables = _tables(text)
    assert set(tables) == {"report", "planted"}
    for name, lines in tables.items():
        report = namespace[name]
        rows = {r.name: r for r in report.outputs + report.gradients}
        checked = 0
        for line in lines:
            m = ROW.match(line)
            if not m:
                continue
            row_name, shape, max_abs, _, verdict = m.groups()
            row = rows[row_name]
            assert shape == str(row.shape), (name, row_name)
            assert verdict == {True: "ok", False: "DIFFERS", None: "-"}[row.ok], (name, row_name)
            if float(max_abs) > 1e-3:  # beyond round-off: the number itself is reproducible
                assert abs(row.max_abs - float(max_abs)) <= 1e-3 * float(max_abs), (name, row_name)
            checked += 1
        assert checked >= 10, name
        first = [line for line in lines if line.startswith("first divergence:")]
        assert first == [f"first divergence: {report.first_divergence}"]
