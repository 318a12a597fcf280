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


# ---- demo / train / eval / predict / data (tiny stand-in tasks: milliseconds per epoch) ----------
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "engine"))
from _box_task import BoxTask, MaskTask  # noqa: E402

import tinyvision.tasks as tasks_pkg  # noqa: E402
from tinyvision.tasks import TaskUnavailableError  # noqa: E402


def fake_get_task(name):
    """get_task -> the tiny stand-ins for localize and segment; detect "not written yet"."""
    if name == "localize":
        return BoxTask()
    if name == "segment":
        return MaskTask()
    raise TaskUnavailableError(f"task {name!r} is not available in this version of tinyvision "
                               f"(tinyvision/tasks/{name}.py is missing)")


@pytest.fixture
def tiny_tasks(monkeypatch):
    monkeypatch.setattr(tasks_pkg, "get_task", fake_get_task)


@pytest.fixture(scope="module")
def error_cases_dir(tmp_path_factory):
    """A folder with a trained tiny run and some bad files, made once for the error table."""
    d = tmp_path_factory.mktemp("errors")
    (d / "bad.npz").write_bytes(b"garbage")
    (d / "bad.json").write_text("{not json")
    import tinyvision as tv
    tv.save({"w": np.zeros(2)}, d / "weights.npz")
    (d / "empty").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks_pkg, "get_task", fake_get_task)
        assert main(["train", "localize", "--out", str(d / "run"), "--no-progress"]) == 0
    return d


@pytest.mark.parametrize("command", ["demo", "train", "eval", "predict", "data", "figures", "coco-eval"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: tinyvision {command}" in capsys.readouterr().out


def test_train_eval_predict_round_trip(tiny_tasks, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "localize", "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "run folder" in out
    for name in ("checkpoint.safetensors", "log.jsonl", "epochs.jsonl", "metrics.json", "losses.png",
                 "predictions.png", "config.json"):
        assert (run / name).exists(), name
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["confusion_matrix"] == [[1, 0], [0, 1]]

    # resume with more epochs continues the same run (its config, not the recipe's)
    assert main(["train", "localize", "--out", str(run), "--resume", "--epochs", "3", "--no-progress"]) == 0
    assert len((run / "epochs.jsonl").read_text().splitlines()) == 3
    capsys.readouterr()

    assert main(["eval", str(run), "--json", str(tmp_path / "eval.json")]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["task"] == "localize"
    assert evaluated["metrics"]["accuracy"] == json.loads((run / "metrics.json").read_text())["accuracy"]

    from PIL import Image
    image, _ = BoxTask().datasets(BoxTask().config(), None)[1][0]
    png = tmp_path / "shape.png"
    Image.fromarray((image.transpose(1, 2, 0) * 255).astype(np.uint8)).resize((32, 32)).save(png)
    assert main(["predict", str(run / "checkpoint.safetensors"), str(png), "--out", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "shape.png").exists()
    preds = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert len(preds["predictions"][str(png)]["boxes"]) == 1


def test_demo_report(tiny_tasks, tmp_path, capsys):
    out = tmp_path / "report"
    status = main(["demo", "--quick", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert status == 1  # detect is missing: reported, not a crash
    assert "skipping detect: task 'detect' is not available" in captured.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"localize", "segment", "seconds", "skipped"}
    assert set(metrics["seconds"]) == {"localize", "segment", "total"}
    assert metrics["seconds"]["total"] >= metrics["seconds"]["localize"] + metrics["seconds"]["segment"] - 1e-3
    page = (out / "index.html").read_text()
    for png in ("losses.png", "localize.png", "segment.png", "localize_figures/confusion.png"):
        assert (out / png).stat().st_size > 1000, png
        assert f"src='{png}'" in page
    assert "Skipped" in page and "confusion matrix" in page


@pytest.mark.parametrize("argv, status, message", [
    (["eval", "missing.npz"], 2, "missing.npz: no such file"),
    (["eval", "bad.npz"], 2, "bad.npz: cannot read it as a checkpoint"),
    (["eval", "weights.npz"], 2, "not a tinyvision checkpoint"),
    (["eval", "run", "--task", "segment"], 2, "is a checkpoint of task 'localize', not 'segment'"),
    (["predict", "run", "nope.png", "--out", "p"], 2, "nope.png: no such image file"),
    (["predict", "run", "bad.json", "--out", "p"], 2, "bad.json: not an image Pillow can read"),
    (["train", "localize", "--data", "nowhere"], 2, "--data 'nowhere': no such folder"),
    (["train", "localize", "--epochs", "0"], 2, "--epochs must be >= 1"),
    (["train", "segment", "--out", "run", "--resume"], 2, "is a checkpoint of task 'localize', not 'segment'"),
    (["train", "localize", "--out", "empty", "--resume"], 2, "no checkpoint in 'empty'"),
    (["train", "detect"], 2, "task 'detect' is not available"),
    (["demo", "--tasks", "classify"], 2, "unknown task(s) classify"),
    (["data", "shapes", "--task", "detect", "--n", "0", "--out", "d"], 2, "--n must be >= 1"),
])
def test_errors_are_one_line(tiny_tasks, error_cases_dir, monkeypatch, capsys, argv, status, message):
    monkeypatch.chdir(error_cases_dir)
    capsys.readouterr()
    assert main(argv) == status
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message in err and err.startswith(f"tinyvision {argv[0]}: error: ")


def test_nonfinite_loss_exit_1(tiny_tasks, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(BoxTask, "loss", lambda self, m, i, t: (tv_nan(), {"box_loss": float("nan")}))
    assert main(["train", "localize", "--out", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "step 0 (epoch 1, batch 1 of 3)" in err and "box_loss=nan" in err


def tv_nan():
    import tinyvision as tv
    return tv.tensor(np.array(np.nan, dtype=np.float32), requires_grad=True)


def test_bad_args_exit_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "tinyvision", "train", "classify"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'classify'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_data_shapes_writes_coco(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert main(["data", "shapes", "--task", "detect", "--n", "3", "--out", str(out), "--seed", "4"]) == 0
    annotations = json.loads((out / "annotations.json").read_text())
    assert len(annotations["images"]) == 3 and annotations["categories"][0]["id"] == 1
    assert "wrote 3 images" in capsys.readouterr().out


def test_figures_command(tmp_path, capsys):
    assert main(["figures", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and all(line.split(": ", 1)[1].endswith(".png") for line in lines)
    for line in lines:
        assert (tmp_path / line.split(": ", 1)[1].split("/")[-1]).stat().st_size > 1000
