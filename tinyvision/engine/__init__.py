"""One training loop for the three tasks: :func:`fit`, its checkpoints and its LR schedule.

>>> from tinyvision.engine import fit                          # doctest: +SKIP
>>> history = fit(get_task("localize"), config, "runs/loc")     # doctest: +SKIP
>>> history.metrics, history.checkpoint                         # doctest: +SKIP

``fit`` drives a :class:`~tinyvision.tasks.Task` (data, model, loss, metrics); see
``tinyvision/engine/loop.py`` for the loop itself and ``checkpoint.py`` for the file format.
"""
from .checkpoint import Checkpoint, CheckpointError, checkpoint_path, load_checkpoint, save_checkpoint
from .loop import History, NonFiniteLossError, build_optimizer, fit
from .schedule import lr_factor

__all__ = ["fit", "History", "NonFiniteLossError", "build_optimizer", "lr_factor", "Checkpoint",
           "CheckpointError", "checkpoint_path", "load_checkpoint", "save_checkpoint"]
