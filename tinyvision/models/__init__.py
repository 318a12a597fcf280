"""Models: backbones (ResNet in torchvision's layout), the localization MultiHead, and the
detection (``tinyvision.models.detection``) and segmentation (``tinyvision.models.segmentation``)
models. Composition only: every op a model uses lives in ``functional``/``nn``/``ops``.

Names load on first use, so ``import tinyvision.models`` builds nothing.
"""
import importlib as _importlib

# public name -> submodule that defines it
_LAZY = {
    "ResNet": "resnet", "BasicBlock": "resnet", "Bottleneck": "resnet",
    "resnet18": "resnet", "resnet34": "resnet", "resnet50": "resnet", "resnet101": "resnet",
    "IntermediateLayerGetter": "_utils",
    "MultiHead": "multihead", "multihead_resnet18": "multihead", "multihead_small": "multihead",
}
_SUBPACKAGES = {"detection", "segmentation", "resnet", "multihead", "_utils"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(_importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tinyvision.models' has no attribute {name!r}")


def __dir__():
    return sorted(set(_LAZY) | _SUBPACKAGES)


__all__ = sorted(_LAZY)
