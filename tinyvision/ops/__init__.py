"""Vision ops with torchvision.ops' names (placeholder, filled below)."""
from .boxes import *  # noqa
from .nms import *  # noqa
