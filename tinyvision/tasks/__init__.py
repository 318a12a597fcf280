"""The three tasks as the engine and the command line see them: localize, detect, segment.

A :class:`~tinyvision.tasks.base.Task` bundles what ``tinyvision train/eval/predict/demo`` needs to
know about one task — its data, its model, its loss, its metrics and its pictures — so that one
training loop (``tinyvision.engine``) serves all three. ``get_task(name)`` returns a fresh one.
"""
import importlib as _importlib

from .base import Task, TrainConfig

__all__ = ["Task", "TrainConfig", "get_task", "TASK_NAMES"]

# task name -> module that defines ``TASK_CLASS``
_MODULES = {"localize": "localize", "detect": "detect", "segment": "segment"}
TASK_NAMES = tuple(_MODULES)


def get_task(name: str) -> Task:
    """A new :class:`Task` for ``name`` (one of ``TASK_NAMES``)."""
    if name not in _MODULES:
        raise ValueError(f"get_task: unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}")
    module = _importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return module.TASK_CLASS()
