"""Differentiable operations with PyTorch's names: ``import tinyvision.functional as F``.

Each op is a :class:`~tinyvision.autograd.Function` (forward and backward side by side, the
derivation in its docstring) behind a lowercase wrapper that checks its arguments.
"""
from .arithmetic import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .reduction import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .resample import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
