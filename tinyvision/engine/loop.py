"""``fit``: the one training loop of the three tasks.

    for epoch in epochs:                                   (resume: from the checkpoint's epoch)
        loader.set_epoch(epoch)                            batch order = f(seed, epoch)
        for images, targets in loader:
            lr = config.lr · lr_factor(step)               warm-up, then the schedule (per step)
            total, parts = task.loss(model, images, targets)
            stop if total or a part is NaN/inf             (NonFiniteLossError names step and part)
            zero_grad; total.backward()
            clip_grad_norm_(max = config.grad_clip_norm)   (optional)
            optimizer.step(); step += 1; log the losses
        metrics = task.evaluate(model, val_set)            (eval mode, no grad; every eval_every epochs)
        save the checkpoint (atomic): weights, optimizer, epoch, step, RNG and loader state

Everything a later epoch depends on — weights and buffers, the optimizer's buffers, the step
number (the schedule is a function of it), the random generator of ``tinyvision.random`` and the
loader's state — is in the checkpoint, so ``fit(..., resume=True)`` after a crash gives, to the
last bit, the weights an uninterrupted run gives (a test checks it).

Files in ``out_dir``: ``checkpoint.safetensors``, ``log.jsonl`` (one JSON object per
optimizer step: epoch, step, lr, loss and each named part), ``epochs.jsonl`` (one per epoch: mean
loss, held-out metrics, seconds), ``metrics.json`` (the last held-out metrics), ``config.json``.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field

from .checkpoint import CheckpointError, checkpoint_path, load_checkpoint, save_checkpoint
from .schedule import SCHEDULES, lr_factor

__all__ = ["fit", "History", "NonFiniteLossError", "build_optimizer"]

OPTIMIZERS = ("sgd", "adam", "adamw")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the loss part."""


@dataclass
class History:
    """What :func:`fit` returns: the trained model and the record of the run."""

    model: object
    steps: list = field(default_factory=list)     # one dict per optimizer step (log.jsonl)
    epochs: list = field(default_factory=list)    # one dict per epoch (epochs.jsonl)
    metrics: dict = field(default_factory=dict)   # the last held-out evaluation
    checkpoint: str = ""
    out_dir: str = ""
    seconds: float = 0.0                          # training + evaluation time, all epochs
    val_set: object = None                        # the held-out dataset it was evaluated on

    def to_dict(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs, "metrics": self.metrics,
                "checkpoint": self.checkpoint, "seconds": self.seconds}


def build_optimizer(model, config):
    """The optimizer ``config.optimizer`` names, over every parameter of ``model``."""
    from .. import optim

    params = list(model.parameters())
    if config.optimizer == "sgd":
        return optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"config.optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")


def _check_config(config):
    from ..tasks.base import TrainConfig

    if not isinstance(config, TrainConfig):
        raise TypeError(f"fit: config must be a TrainConfig, got {type(config).__name__}")
    for name in ("epochs", "batch_size", "eval_every"):
        value = getattr(config, name)
        low = 0 if name == "eval_every" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"fit: config.{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(config.lr, (int, float)) and math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"fit: config.lr must be a positive number, got {config.lr!r}")
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"fit: config.optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"fit: config.schedule must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}")
    if config.grad_clip_norm is not None and not config.grad_clip_norm > 0:
        raise ValueError(f"fit: config.grad_clip_norm must be > 0 or None, got {config.grad_clip_norm!r}")


def _nonfinite_message(step, epoch, batch, n_batches, total, parts, lr):
    bad = {k: v for k, v in parts.items() if not math.isfinite(v)}
    finite = {k: v for k, v in parts.items() if math.isfinite(v)}
    where = f"step {step} (epoch {epoch + 1}, batch {batch + 1} of {n_batches})"
    if bad:
        named = ", ".join(f"{k}={v}" for k, v in bad.items())
        rest = (" (finite: " + ", ".join(f"{k}={v:.4g}" for k, v in finite.items()) + ")") if finite else ""
        what = f"the loss part {named} is non-finite{rest}; total loss = {total}"
    else:
        what = f"the total loss is {total} (its parts are finite: " + \
               ", ".join(f"{k}={v:.4g}" for k, v in parts.items()) + ")"
    return (f"{where}: {what}. Training stopped before the update; the last checkpoint is intact. "
            f"Try a lower learning rate (lr={lr:.3g}), grad_clip_norm, or check the batch's targets.")


def _jsonable(value):
    """A metric value for the JSON logs: numbers become floats, arrays nested lists (a confusion
    matrix, per-class values), dicts and lists are converted item by item."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, str) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"fit: task.evaluate returned a {type(value).__name__} metric; expected "
                        "numbers, lists/arrays of numbers, or dicts of them") from None


def _read_jsonl(path, keep):
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                row = json.loads(line)
                if keep(row):
                    rows.append(row)
    return rows


def _write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _progress_bar(total, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, unit="batch", dynamic_ncols=True,
                leave=False, disable=not (enabled and sys.stderr.isatty()))


def _say(message, enabled):
    if enabled:
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)


def fit(task, config=None, out_dir="runs/train", resume: bool = False, progress: bool = True,
        data_dir=None) -> History:
    """Train ``task``'s model with ``config`` (default ``task.config()``), evaluating on the
    held-out set after every ``config.eval_every`` epochs and checkpointing to ``out_dir``.

    Args:
        task: a :class:`~tinyvision.tasks.Task`.
        config: a :class:`~tinyvision.tasks.TrainConfig`.
        out_dir: the run folder (created); see the module docstring for what it holds.
        resume: continue from ``out_dir``'s checkpoint (same task; same config except
            ``epochs``, which may grow). Without it an existing run in ``out_dir`` is replaced.
        progress: a tqdm bar (loss, rate, ETA) on stderr when it is a terminal, and one line per
            epoch; ``False`` is silent.
        data_dir: a COCO-format folder for ``task.datasets`` (None: the synthetic set).

    Returns:
        a :class:`History` (model, per-step and per-epoch logs, last metrics, checkpoint path).

    Raises:
        NonFiniteLossError: the loss (or a named part of it) became NaN/inf; names the step.
        CheckpointError: ``resume`` without a checkpoint, or one of another task or config.
    """
    import tinyvision as tv
    from ..autograd import no_grad
    from ..data import DataLoader
    from ..nn.utils import clip_grad_norm_

    config = task.config() if config is None else config
    _check_config(config)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    log_path, epochs_path = os.path.join(out_dir, "log.jsonl"), os.path.join(out_dir, "epochs.jsonl")
    ckpt_path = checkpoint_path(out_dir)

    train_set, val_set = task.datasets(config, data_dir=data_dir)
    tv.manual_seed(config.seed)                       # the weights' initialisation
    model = task.build_model(config)
    optimizer = build_optimizer(model, config)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, drop_last=False,
                        collate_fn=task.collate, seed=config.seed)
    n_batches = len(loader)
    if n_batches == 0:
        raise ValueError(f"fit: the training set of task {task.name!r} is empty")
    total_steps = config.epochs * n_batches

    start_epoch, step, metrics = 0, 0, {}
    if resume:
        if not os.path.exists(ckpt_path):
            raise CheckpointError(f"{out_dir}: nothing to resume (no checkpoint in this folder)")
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.meta.get("task") != task.name:
            raise CheckpointError(f"{ckpt.path}: a checkpoint of task {ckpt.meta.get('task')!r}, "
                                  f"not {task.name!r}")
        saved, now = dict(ckpt.meta["config"]), config.to_dict()
        changed = sorted(k for k in set(saved) | set(now) if k != "epochs" and saved.get(k) != now.get(k))
        if changed:
            raise CheckpointError(f"{ckpt.path}: the run was made with another config ("
                                  + ", ".join(f"{k}: {saved.get(k)!r} there, {now.get(k)!r} here"
                                              for k in changed) + "); only epochs may change on resume")
        model.load_state_dict(ckpt.model_state)
        optimizer.load_state_dict(ckpt.optimizer_state)
        tv.random.default_generator().bit_generator.state = ckpt.meta["rng"]
        if ckpt.meta.get("loader") is not None and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(ckpt.meta["loader"])
        start_epoch, step, metrics = ckpt.meta["epoch"], ckpt.meta["step"], ckpt.meta.get("metrics", {})
        # a crash after the checkpoint left steps in the logs that the resumed run repeats
        steps = _read_jsonl(log_path, lambda r: r["step"] <= step)
        epochs = _read_jsonl(epochs_path, lambda r: r["epoch"] <= start_epoch)
        _say(f"{task.name}: resuming from {ckpt.path} (epoch {start_epoch}, step {step})", progress)
    else:
        steps, epochs = [], []
    _write_jsonl(log_path, steps)
    _write_jsonl(epochs_path, epochs)
    _write_json(os.path.join(out_dir, "config.json"), {"task": task.name, "config": config.to_dict()})
    history = History(model=model, steps=steps, epochs=epochs, metrics=metrics, checkpoint=ckpt_path,
                      out_dir=out_dir, seconds=sum(e.get("seconds", 0.0) for e in epochs),
                      val_set=val_set)

    log = open(log_path, "a")
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            model.train()
            loader.set_epoch(epoch)
            bar = _progress_bar(n_batches, f"{task.name} {epoch + 1}/{config.epochs}", progress)
            losses = []
            try:
                for batch, (images, targets) in enumerate(loader):
                    lr = config.lr * lr_factor(step, total_steps, config)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    total, parts = task.loss(model, images, targets)
                    value = float(total.item() if hasattr(total, "item") else total)
                    parts = {k: float(v) for k, v in parts.items()}
                    if not math.isfinite(value) or not all(math.isfinite(v) for v in parts.values()):
                        raise NonFiniteLossError(
                            f"{task.name}: " + _nonfinite_message(step, epoch, batch, n_batches, value, parts, lr))
                    optimizer.zero_grad()
                    total.backward()
                    row = {"epoch": epoch + 1, "step": step + 1, "lr": lr, "loss": value, **parts}
                    if config.grad_clip_norm is not None:
                        row["grad_norm"] = float(clip_grad_norm_(model.parameters(), config.grad_clip_norm).item())
                    optimizer.step()
                    step += 1
                    losses.append(value)
                    steps.append(row)
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", refresh=False)
                    bar.update(1)
            finally:
                bar.close()
            record = {"epoch": epoch + 1, "step": step, "loss": sum(losses) / len(losses)}
            if epoch + 1 == config.epochs or (config.eval_every and (epoch + 1) % config.eval_every == 0):
                model.eval()
                with no_grad():
                    metrics = {str(k): _jsonable(v) for k, v in task.evaluate(model, val_set, config).items()}
                model.train()
                record["val"] = metrics
            record["seconds"] = time.perf_counter() - started
            epochs.append(record)
            with open(epochs_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            history.seconds += record["seconds"]
            history.metrics = metrics
            save_checkpoint(ckpt_path, model, optimizer, task=task.name, config=config.to_dict(),
                            epoch=epoch + 1, step=step, metrics=metrics,
                            rng=tv.random.default_generator().bit_generator.state,
                            loader=loader.state_dict() if hasattr(loader, "state_dict") else None)
            _write_json(os.path.join(out_dir, "metrics.json"), metrics)
            numbers = [(k, v) for k, v in metrics.items() if isinstance(v, float)][:6]
            shown = "  ".join(f"{k} {v:.4f}" for k, v in numbers) if "val" in record else ""
            _say(f"{task.name} epoch {epoch + 1}/{config.epochs}  loss {record['loss']:.4f}  "
                 f"{shown}  ({record['seconds']:.1f} s)", progress)
    finally:
        log.close()
    model.eval()
    return history
