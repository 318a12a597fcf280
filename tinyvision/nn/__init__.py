"""Layers and models' building blocks, PyTorch's ``torch.nn`` names and state_dict keys."""
from . import init  # noqa: F401
from . import utils  # noqa: F401
from .module import *  # noqa: F401,F403
from .containers import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .upsample import *  # noqa: F401,F403
