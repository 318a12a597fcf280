"""The training loop: resume equals an uninterrupted run to the last bit, the NaN guard,
checkpoints round-trip, determinism, the log files."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _tiny_task import Crash, TinyTask  # noqa: E402

from tinyvision.engine import (CheckpointError, NonFiniteLossError, fit,  # noqa: E402
                               load_checkpoint)


def weights(model):
    return model.state_dict()


def assert_same_weights(a, b):
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_resume_equals_uninterrupted_run(tmp_path, optimizer):
    task = TinyTask()
    config = task.config()
    config.optimizer, config.epochs, config.grad_clip_norm = optimizer, 3, 1.0
    straight = fit(task, config, tmp_path / "straight", progress=False)
    steps_per_epoch = len(straight.steps) // 3  # 36 images / batch 8 -> 5 batches

    # killed during the second epoch: its checkpoint holds epoch 1
    crashing = TinyTask(crash_at_step=steps_per_epoch + 2)
    with pytest.raises(Crash):
        fit(crashing, config, tmp_path / "resumed", progress=False)
    assert load_checkpoint(tmp_path / "resumed").meta["epoch"] == 1
    resumed = fit(TinyTask(), config, tmp_path / "resumed", resume=True, progress=False)

    assert_same_weights(weights(straight.model), weights(resumed.model))
    assert straight.steps == resumed.steps  # the log too: the repeated steps were dropped
    assert [e["loss"] for e in straight.epochs] == [e["loss"] for e in resumed.epochs]
    assert straight.metrics == resumed.metrics
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a.meta["rng"] == b.meta["rng"] and a.meta["step"] == b.meta["step"] == 3 * steps_per_epoch
    for i, buffers in a.optimizer_state["state"].items():
        for name, value in buffers.items():
            np.testing.assert_array_equal(value, b.optimizer_state["state"][i][name])
    lines = (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == straight.steps


def test_resume_can_extend_epochs_and_refuses_other_changes(tmp_path):
    task = TinyTask()
    config = task.config()
    config.epochs = 1
    fit(task, config, tmp_path, progress=False)
    config.epochs = 2
    history = fit(TinyTask(), config, tmp_path, resume=True, progress=False)
    assert [e["epoch"] for e in history.epochs] == [1, 2]
    config.lr = 0.5
    with pytest.raises(CheckpointError, match=r"lr: 0.01 there, 0.5 here"):
        fit(TinyTask(), config, tmp_path, resume=True, progress=False)
    other = TinyTask()
    other.name = "other"
    with pytest.raises(CheckpointError, match="task 'tiny', not 'other'"):
        fit(other, task.config(), tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        fit(TinyTask(), task.config(), tmp_path / "empty", resume=True, progress=False)


def test_same_seed_same_run_other_seed_other_run(tmp_path):
    task = TinyTask()
    config = task.config()
    config.epochs = 1
    a = fit(task, config, tmp_path / "a", progress=False)
    b = fit(TinyTask(), config, tmp_path / "b", progress=False)
    assert_same_weights(weights(a.model), weights(b.model))
    config.seed = 6
    c = fit(TinyTask(), config, tmp_path / "c", progress=False)
    assert not np.array_equal(weights(a.model)["cls.weight"], weights(c.model)["cls.weight"])


@pytest.mark.parametrize("part, shown", [("reg", "reg=nan"), ("cls", "cls=inf")])
def test_nonfinite_loss_stops_naming_step_and_part(tmp_path, part, shown):
    task = TinyTask(nan_at_step=7, nan_part=part)
    with pytest.raises(NonFiniteLossError) as info:
        fit(task, task.config(), tmp_path, progress=False)
    message = str(info.value)
    assert "step 6 (epoch 2, batch 2 of 5)" in message  # 0-based step 6 = the 7th loss
    assert shown in message and "non-finite" in message
    # the checkpoint of epoch 1 is intact, and the log stops before the bad step
    assert load_checkpoint(tmp_path).meta["epoch"] == 1
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 6


def test_checkpoint_round_trip(tmp_path):
    task = TinyTask()
    config = task.config()
    config.epochs = 1
    history = fit(task, config, tmp_path, progress=False)
    ckpt = load_checkpoint(history.checkpoint)
    assert ckpt.task == "tiny" and ckpt.config() == config
    assert ckpt.meta["epoch"] == 1 and ckpt.meta["step"] == 5
    assert ckpt.meta["metrics"] == history.metrics
    model = task.build_model(config)
    model.load_state_dict(ckpt.model_state)
    assert_same_weights(weights(model), weights(history.model))
    assert set(ckpt.optimizer_state["state"]) == set(range(len(list(model.parameters()))))
    assert ckpt.optimizer_state["state"][0]["step"] == 5
    assert json.loads((tmp_path / "metrics.json").read_text()) == history.metrics
    assert history.checkpoint.endswith("checkpoint.safetensors")
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_log_rows_and_warmup(tmp_path):
    task = TinyTask()
    history = fit(task, task.config(), tmp_path, progress=False)
    rows = history.steps
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert set(rows[0]) >= {"epoch", "step", "lr", "loss", "cls", "reg"}
    lrs = [r["lr"] for r in rows]
    assert lrs[0] == pytest.approx(0.01 * 0.001) and lrs[3] == pytest.approx(0.01)
    assert lrs[1] < lrs[2] < lrs[3] > lrs[4] > lrs[-1]
    for r in rows:
        assert r["loss"] == pytest.approx(r["cls"] + 0.5 * r["reg"], rel=1e-5)
    assert "val" in history.epochs[-1] and 0 <= history.metrics["accuracy"] <= 1


def test_bad_files_give_checkpoint_errors(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.npz: cannot read"):
        load_checkpoint(tmp_path / "junk.npz")
    import tinyvision as tv
    bare = tv.save({"w": np.zeros(3)}, tmp_path / "bare.npz")
    with pytest.raises(CheckpointError, match="not a tinyvision checkpoint"):
        load_checkpoint(bare)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.npz")
    with pytest.raises(CheckpointError, match="no checkpoint in this folder"):
        load_checkpoint(tmp_path)


def test_bad_config_is_named(tmp_path):
    task = TinyTask()
    config = task.config()
    config.epochs = 0
    with pytest.raises(ValueError, match="config.epochs must be an integer >= 1"):
        fit(task, config, tmp_path, progress=False)
    config = task.config()
    config.optimizer = "lbfgs"
    with pytest.raises(ValueError, match="config.optimizer must be one of sgd, adam, adamw"):
        fit(task, config, tmp_path, progress=False)


def test_progress_lines_go_to_stderr_without_a_bar_off_a_terminal(tmp_path, capsys):
    task = TinyTask()
    config = task.config()
    config.eval_every = 2
    fit(task, config, tmp_path, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("tiny epoch 1/2  loss ") and "accuracy" not in lines[0]  # no eval yet
    assert lines[1].startswith("tiny epoch 2/2  loss ") and "accuracy" in lines[1]
    assert "\r" not in captured.err  # stderr is not a terminal here: no bar
    fit(TinyTask(), config, tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal_shows_loss_rate_and_eta():
    """On a terminal (a pseudo-terminal here) the bar shows count, rate, ETA and the postfix."""
    pty = pytest.importorskip("pty")
    import fcntl
    import select
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 140, 0, 0))
    code = ("from tinyvision.engine.loop import _progress_bar\n"
            "bar = _progress_bar(4, 'tiny 1/2', True)\n"
            "for _ in range(4):\n"
            "    bar.set_postfix(loss='0.1234', lr='1.00e-03', refresh=False); bar.update(1)\n"
            "bar.refresh(); bar.close()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while select.select([master], [], [], 60)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(master)
    text = out.decode(errors="replace")
    assert "tiny 1/2" in text and "4/4" in text
    assert "batch/s" in text and "<00:00" in text          # rate and time left
    assert "loss=0.1234" in text and "lr=1.00e-03" in text
