"""Losses of the detection and segmentation models (the elementwise ones with PyTorch's names
live in ``tinyvision.functional``)."""
from .focal import *  # noqa: F401,F403
from .localization import *  # noqa: F401,F403
from .dice import *  # noqa: F401,F403
