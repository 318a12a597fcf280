"""Training checkpoints: one file, no pickle, written atomically.

A checkpoint is one array file written by :func:`tinyvision.save` — ``checkpoint.safetensors``
(``.npz`` works too: the suffix chooses) — so it is atomic (a crash mid-write leaves the previous
checkpoint intact) and pickle-free. It holds

    model.<name>                  the model's state_dict (parameters and buffers)
    optimizer.<index>.<buffer>    the optimizer's per-parameter arrays (momentum, exp_avg, ...)
    meta.json                     uint8: UTF-8 JSON of everything else (below)

and ``meta.json`` = ``{"format": "tinyvision-checkpoint", "version": 1, "task", "config",
"epoch" (epochs completed), "step" (optimizer steps taken), "optimizer": {"param_groups",
"scalars"}, "rng" (the NumPy bit-generator state of ``tinyvision.random``), "loader" (the data
loader's state, if it has one), "metrics" (the last evaluation)}``. Integers of any size (PCG64's
128-bit state) are exact in JSON, so nothing is lost.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "CheckpointError",
           "CHECKPOINT_NAME", "checkpoint_path"]

FORMAT = "tinyvision-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint"   # out_dir/checkpoint.<ext>


class CheckpointError(ValueError):
    """A file that is not a readable tinyvision checkpoint (the message names the file)."""


def checkpoint_path(out_dir) -> str:
    """Where :func:`~tinyvision.engine.fit` keeps the checkpoint of a run in ``out_dir``: an
    existing ``checkpoint.safetensors`` or ``checkpoint.npz``, else the name it will write."""
    for ext in (".safetensors", ".npz"):
        path = os.path.join(os.fspath(out_dir), CHECKPOINT_NAME + ext)
        if os.path.exists(path):
            return path
    return os.path.join(os.fspath(out_dir), CHECKPOINT_NAME + ".safetensors")


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns. ``model_state`` and ``optimizer_state`` are ready
    for ``Module.load_state_dict`` and ``Optimizer.load_state_dict``."""

    path: str
    meta: dict
    model_state: dict
    optimizer_state: dict | None = field(default=None)

    @property
    def task(self) -> str:
        return self.meta["task"]

    def config(self):
        """The run's :class:`~tinyvision.tasks.TrainConfig`."""
        from ..tasks import TrainConfig

        return TrainConfig(**self.meta["config"])


def save_checkpoint(path, model, optimizer=None, **meta) -> str:
    """Write ``model`` (and ``optimizer``) with ``meta`` (JSON-able) to ``path``; returns the path."""
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars = {}
        for index, buffers in state["state"].items():
            for name, value in buffers.items():
                if hasattr(value, "shape"):
                    arrays[f"optimizer.{index}.{name}"] = value
                else:
                    scalars.setdefault(str(index), {})[name] = value
        groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
                  for g in state["param_groups"]]
        meta["optimizer"] = {"param_groups": groups, "scalars": scalars}
    meta = {"format": FORMAT, "version": VERSION, **meta}
    try:
        text = json.dumps(meta, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"save_checkpoint: the metadata is not JSON-serialisable ({exc})") from None
    arrays["meta.json"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    from .. import io

    return io.save(arrays, path)


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`. ``path`` may be the file or the run
    folder that holds it. Raises :class:`CheckpointError` (naming the file) on anything else."""
    path = os.fspath(path)
    if os.path.isdir(path):
        found = checkpoint_path(path)
        if not os.path.exists(found):
            raise CheckpointError(f"{path}: no checkpoint in this folder (expected "
                                  f"{CHECKPOINT_NAME}.npz or {CHECKPOINT_NAME}.safetensors)")
        path = found
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    from .. import io

    try:
        arrays = io.load(path)
    except Exception as exc:  # every reader failure becomes one line naming the file
        raise CheckpointError(f"{path}: cannot read it as a checkpoint ({type(exc).__name__}: {exc})") from None
    if "meta.json" not in arrays:
        raise CheckpointError(f"{path}: not a tinyvision checkpoint (no meta.json entry; a bare "
                              "weights file? load it with tinyvision.load)")
    try:
        meta = json.loads(bytes(np.asarray(arrays["meta.json"], dtype=np.uint8)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: its meta.json entry is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tinyvision checkpoint (meta.json format is "
                              f"{meta.get('format') if isinstance(meta, dict) else type(meta).__name__!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta.get('version')!r}; this tinyvision "
                              f"reads version {VERSION}")
    model_state = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    optimizer_state = None
    if "optimizer" in meta:
        state = {}
        for k, v in arrays.items():
            if k.startswith("optimizer."):
                _, index, name = k.split(".", 2)
                state.setdefault(int(index), {})[name] = v
        for index, scalars in meta["optimizer"]["scalars"].items():
            state.setdefault(int(index), {}).update(scalars)
        optimizer_state = {"state": state, "param_groups": meta["optimizer"]["param_groups"]}
    return Checkpoint(path=path, meta=meta, model_state=model_state, optimizer_state=optimizer_state)
