"""The three tasks as the engine and the command line see them: localize, detect, segment.

A :class:`~tinyvision.tasks.base.Task` bundles what ``tinyvision train/eval/predict/demo`` needs to
know about one task — its data, its model, its loss, its metrics and its pictures — so that one
training loop (``tinyvision.engine``) serves all three. ``get_task(name)`` returns a fresh one.
"""
import importlib as _importlib

from .base import Task, TrainConfig

__all__ = ["Task", "TrainConfig", "get_task", "TASK_NAMES", "TaskUnavailableError"]

# task name -> module that defines ``TASK_CLASS``
_MODULES = {"localize": "localize", "detect": "detect", "segment": "segment"}
TASK_NAMES = tuple(_MODULES)


class TaskUnavailableError(ImportError):
    """A known task whose recipe cannot be imported (not written yet, or a dependency missing)."""


def get_task(name: str) -> Task:
    """A new :class:`Task` for ``name`` (one of ``TASK_NAMES``).

    Raises ``ValueError`` for an unknown name and :class:`TaskUnavailableError` (an
    ``ImportError``) when the task's module is missing or fails to import.
    """
    if name not in _MODULES:
        raise ValueError(f"get_task: unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}")
    module_name = f"{__name__}.{_MODULES[name]}"
    try:
        module = _importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise TaskUnavailableError(
                f"task {name!r} is not available in this version of tinyvision "
                f"(tinyvision/tasks/{_MODULES[name]}.py is missing)") from None
        raise TaskUnavailableError(f"task {name!r} cannot be loaded: {exc}") from exc
    except ImportError as exc:
        raise TaskUnavailableError(f"task {name!r} cannot be loaded: {exc}") from exc
    if not hasattr(module, "TASK_CLASS"):
        raise TaskUnavailableError(f"task {name!r}: {module_name} defines no TASK_CLASS")
    return module.TASK_CLASS()
