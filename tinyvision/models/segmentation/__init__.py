"""Segmentation models: smp's ``Unet`` with ResNet encoders (same arguments, state_dict keys and
numbers as segmentation_models_pytorch 0.6.0) and the paper's U-Net (Ronneberger et al. 2015)
as ``UNet2015`` / ``unet_ronneberger``."""
from .unet import *  # noqa: F401,F403
from .unet_paper import *  # noqa: F401,F403
from . import unet as _unet, unet_paper as _unet_paper

__all__ = [*_unet.__all__, *_unet_paper.__all__]
