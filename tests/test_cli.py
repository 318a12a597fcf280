"""The ``tinyvision`` command line (``tinyvision.cli.main`` and ``python -m tinyvision``)."""
import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from tinyvision.cli import build_parser, main
from tinyvision.metrics._coco_synth import reference_eval, synthetic_coco


@pytest.fixture(scope="module")
def coco_files(tmp_path_factory):
    gt, dets = synthetic_coco(n_images=10, seed=3)
    d = tmp_path_factory.mktemp("coco")
    (d / "gt.json").write_text(json.dumps(gt))
    (d / "dt.json").write_text(json.dumps(dets))
    return d, gt, dets


def test_coco_eval_prints_pycocotools_summary(coco_files, capsys):
    pytest.importorskip("pycocotools")
    d, gt, dets = coco_files
    assert main(["coco-eval", str(d / "gt.json"), str(d / "dt.json")]) == 0
    out = capsys.readouterr().out
    ref = reference_eval(gt, dets)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ref.summarize()
    assert out == buf.getvalue()


def test_coco_eval_writes_json(coco_files, capsys):
    pytest.importorskip("pycocotools")
    d, gt, dets = coco_files
    out = d / "stats.json"
    assert main(["coco-eval", str(d / "gt.json"), str(d / "dt.json"), "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    ref = reference_eval(gt, dets)
    np.testing.assert_allclose(payload["stats_list"], ref.stats, rtol=0, atol=1e-12)
    assert list(payload["stats"]) == ["AP", "AP50", "AP75", "APs", "APm", "APl",
                                      "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    assert payload["mode"] == "pycocotools"
    assert set(payload["per_category_ap"]) == {str(c["id"]) for c in gt["categories"]}


def test_coco_eval_fixed_mode(coco_files, capsys):
    pytest.importorskip("faster_coco_eval")
    d, gt, dets = coco_files
    out = d / "fixed.json"
    assert main(["coco-eval", str(d / "gt.json"), str(d / "dt.json"), "--fixed", "--json", str(out)]) == 0
    ref = reference_eval(gt, dets, backend="faster-coco-eval")
    np.testing.assert_allclose(json.loads(out.read_text())["stats_list"], ref.stats, rtol=0, atol=1e-12)


def test_coco_eval_bad_input_exits_2_with_message(coco_files, tmp_path, capsys):
    d, gt, dets = coco_files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dets[:3] + [{"image_id": dets[0]["image_id"], "category_id": 1,
                                           "bbox": [0, 0, 1, 1]}]))
    assert main(["coco-eval", str(d / "gt.json"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "detections[3] is missing the field 'score'" in err
    assert main(["coco-eval", str(tmp_path / "nope.json"), str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "coco-eval" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])


def test_python_dash_m(coco_files):
    d, _, _ = coco_files
    proc = subprocess.run([sys.executable, "-m", "tinyvision", "coco-eval", str(d / "gt.json"),
                           str(d / "dt.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all")
