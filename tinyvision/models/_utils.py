"""Feature extraction from a backbone: :class:`IntermediateLayerGetter` (torchvision.models._utils)."""
from __future__ import annotations

from collections import OrderedDict

from .. import nn

__all__ = ["IntermediateLayerGetter"]


class IntermediateLayerGetter(nn.ModuleDict):
    """Run a model's direct children in registration order and return some of their outputs.

    Args:
        model: a Module whose children, in the order they were assigned, are applied one after
            the other (true of :class:`~tinyvision.models.ResNet` up to layer4; its ``avgpool``/``fc``
            come after the last returned layer and are left out).
        return_layers: ``{child name: output name}``, e.g. ``{"layer2": "0", "layer3": "1", "layer4": "2"}``.

    Calling it returns an ``OrderedDict`` output name -> Tensor, in execution order. Only the
    children up to the last one asked for are kept, so the state_dict keys are the model's own
    keys of those children (``conv1.weight``, ``layer1.0.conv1.weight``, ...), as torchvision's.
    Like torchvision's, it cannot reach inside a child (``"layer4.2"`` is an error) and it assumes
    a module is not reused twice in the forward pass.

    >>> import numpy as np, tinyvision as tv
    >>> from tinyvision.models import resnet18
    >>> body = IntermediateLayerGetter(resnet18(), {"layer2": "0", "layer4": "1"})
    >>> out = body(tv.tensor(np.zeros((1, 3, 64, 64), np.float32)))
    >>> [(name, t.shape) for name, t in out.items()]
    [('0', (1, 128, 8, 8)), ('1', (1, 512, 2, 2))]
    """

    def __init__(self, model: nn.Module, return_layers: dict):
        children = [name for name, _ in model.named_children()]
        if not set(return_layers).issubset(children):
            missing = sorted(set(map(str, return_layers)) - set(children))
            raise ValueError(f"return_layers are not present in model: {missing} not among its children {children}")
        orig_return_layers = return_layers
        wanted = {str(k): str(v) for k, v in return_layers.items()}
        layers = OrderedDict()
        for name, module in model.named_children():
            layers[name] = module
            wanted.pop(name, None)
            if not wanted:
                break
        super().__init__(layers)
        self.return_layers = orig_return_layers

    def forward(self, x):
        out = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out
