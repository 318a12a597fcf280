r"""Single-object localization: one backbone shared by a classification head and a box head.

The lesson's model, as one class::

    image x (N, C, H, W) ──backbone──> features f (N, D) ──class_head──> class_scores (N, K)
                                                      └───loc_head───> bounding_box (N, 4)

Shapes: N images, C channels, H x W pixels, D feature size, K classes.

* ``class_scores`` are logits (no softmax: :func:`tinyvision.functional.cross_entropy` applies
  log-softmax itself, in one stable step).
* ``bounding_box`` is normalised to the image: every number lies in [0, 1], x divided by W and
  y by H, because the box head ends in a sigmoid. The task multiplies by (W, H, W, H) to get
  pixels back.

Why normalised boxes (the scale of the two loss terms)
-------------------------------------------------------
The training loss is ``L = CE + α · MSE`` (:mod:`tinyvision.losses.localization`). At the start
of training CE is about log K (1.6 for 5 classes), and its gradient with respect to each logit
is at most 1 in size. With boxes in [0, 1] the squared error of one coordinate is at most 1,
and an untrained model (every coordinate near 0.5) starts with an MSE of about 0.09 on the shapes
data; its gradient 2 (b̂ - b) / 4 per coordinate is at most 1/2. Both terms are O(1), so α is
an honest exchange rate: α = 1 weighs a unit of CE like a unit of mean squared error, and you
move α to say which mistake you mind more. In pixels of a 64-pixel image the same squared error
would be 64² = 4096 times larger; the box term would swamp CE, α would have to be about 1/4096
to undo that, and the right α would change with the image size. The sigmoid also keeps every
prediction inside the image.

How α trades the heads: the backbone receives the sum of the two heads' gradients,
``g_f = g_f^{class} + α g_f^{box}``; a larger α makes the shared features serve the box more
and the classes less (the heads themselves only see their own term; α scales the box head's
gradient, i.e. its effective learning rate under SGD — Adam normalises that scale away for the
head's own weights but not the split of the shared features).

Box formats
-----------
``box_format="xyxy"``: the 4 outputs are (x1, y1, x2, y2). Nothing forces x1 <= x2 in a
prediction; an untrained model often predicts inside-out boxes, which IoU counts as empty.
``box_format="cxcywh"``: the outputs are (cx, cy, w, h) — the centre and size, with w, h >= 0
by construction; a sigmoid centre and size can still reach outside the image (cx + w/2 > 1),
which the task clips when it converts to pixel corners. The loss compares the prediction with
the target in the model's format, so MSE on cxcywh weighs centre and size errors, MSE on xyxy
the four edges.
"""
from __future__ import annotations

from .. import nn

__all__ = ["MultiHead", "multihead_resnet18", "multihead_small", "BOX_FORMATS"]

BOX_FORMATS = ("xyxy", "cxcywh")


def _check_box_format(box_format, where):
    if box_format not in BOX_FORMATS:
        raise ValueError(f"{where}: box_format must be one of {BOX_FORMATS}, got {box_format!r}")


class MultiHead(nn.Module):
    """A backbone and two heads: ``forward(x) -> (class_scores, bounding_box)``.

    Args:
        backbone (Module): images (N, C, H, W) -> features (N, D), already flattened.
        class_head (Module): features (N, D) -> class logits (N, K).
        loc_head (Module): features (N, D) -> box (N, 4), normalised to [0, 1] of the image
            (the builders end it with a sigmoid).
        box_format (str): what the 4 numbers mean, "xyxy" or "cxcywh" (see the module docstring).
        in_channels (int or None): image channels the backbone expects; checked in ``forward``.
        image_size (int, (H, W) or None): the one image size the backbone accepts (a backbone
            that flattens a feature map, like :func:`multihead_small`'s); None: any size.

    state_dict keys: ``backbone.*``, ``class_head.*``, ``loc_head.*``.
    """

    def __init__(self, backbone, class_head, loc_head, box_format: str = "xyxy", in_channels=3, image_size=None):
        super().__init__()
        _check_box_format(box_format, "MultiHead")
        self.backbone = backbone
        self.class_head = class_head
        self.loc_head = loc_head
        self.box_format = box_format
        self.in_channels = in_channels
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)

    def _check_images(self, x):
        shape = tuple(x.shape)
        c = "C" if self.in_channels is None else str(self.in_channels)
        hw = ("H", "W") if self.image_size is None else tuple(str(s) for s in self.image_size)
        want = f"(N, {c}, {hw[0]}, {hw[1]})"
        if (len(shape) != 4 or (self.in_channels is not None and shape[1] != self.in_channels)
                or (self.image_size is not None and shape[2:] != self.image_size)):
            raise ValueError(f"{type(self).__name__}: images must have shape {want}, got {shape}")

    def forward(self, x):
        self._check_images(x)
        features = self.backbone(x)                 # (N, D)
        class_scores = self.class_head(features)    # (N, K) logits
        bounding_box = self.loc_head(features)      # (N, 4) in [0, 1], in self.box_format
        return class_scores, bounding_box

    def extra_repr(self):
        return f"box_format={self.box_format!r}"


def _box_head(in_features: int, hidden: int = 0):
    """Linear (-> hidden -> ReLU) -> 4 -> sigmoid: four numbers in (0, 1)."""
    if hidden:
        return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 4), nn.Sigmoid())
    return nn.Sequential(nn.Linear(in_features, 4), nn.Sigmoid())


def multihead_resnet18(n_classes: int, box_format: str = "xyxy", **resnet_kwargs):
    """MultiHead on torchvision's ResNet-18 without its ``fc``.

    The backbone is :func:`tinyvision.models.resnet18` with ``fc`` replaced by ``Identity``, so it
    ends in global average pooling and a flatten: features (N, 512). Heads: ``class_head`` =
    Linear(512, n_classes); ``loc_head`` = Linear(512, 4) -> Sigmoid. The backbone's state_dict keys
    are torchvision's resnet18 keys (less ``fc.*``) under ``backbone.``, so torchvision weights load
    with a prefix. ``resnet_kwargs`` go to ``resnet18`` (e.g. ``norm_layer``).
    """
    _check_n_classes(n_classes, "multihead_resnet18")
    _check_box_format(box_format, "multihead_resnet18")
    from .resnet import resnet18

    backbone = resnet18(**resnet_kwargs)
    width = backbone.fc.in_features
    backbone.fc = nn.Identity()                      # (N, 512, 1, 1) -> flatten -> (N, 512)
    return MultiHead(backbone, nn.Linear(width, n_classes), _box_head(width), box_format=box_format)


def multihead_small(n_classes: int, box_format: str = "xyxy", image_size: int = 64, in_channels: int = 3,
                    widths=(16, 32, 64, 64), hidden: int = 0):
    """A small CNN MultiHead, sized to train on two CPU cores in a couple of minutes.

    Backbone: ``len(widths)`` stages of conv3x3 (no bias) -> BatchNorm -> ReLU -> max-pool 2x2, then
    a flatten of the last (widths[-1], S, S) map, S = image_size / 2^len(widths) (64 -> 4). The
    flatten, rather than global average pooling, keeps *where* each feature fired, which is
    exactly what the box head needs. Heads: ``class_head`` = Linear(D, n_classes);
    ``loc_head`` = Linear(D, 4) -> Sigmoid (or Linear(D, hidden) -> ReLU -> Linear(hidden, 4) ->
    Sigmoid when ``hidden`` > 0). D = widths[-1] · S².

    Images must be (N, in_channels, image_size, image_size).
    """
    _check_n_classes(n_classes, "multihead_small")
    _check_box_format(box_format, "multihead_small")
    stages = len(widths)
    if stages == 0 or image_size % (2 ** stages) != 0:
        raise ValueError(
            f"multihead_small: image_size {image_size} must be divisible by 2^len(widths) = {2 ** stages} "
            f"(widths={tuple(widths)})"
        )
    layers, c = [], in_channels
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
        c = w
    side = image_size // 2 ** stages
    layers.append(nn.Flatten())                      # (N, c, side, side) -> (N, c * side^2)
    d = c * side * side
    return MultiHead(nn.Sequential(*layers), nn.Linear(d, n_classes), _box_head(d, hidden),
                     box_format=box_format, in_channels=in_channels, image_size=image_size)


def _check_n_classes(n_classes, where):
    if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 1:
        raise ValueError(f"{where}: n_classes must be a positive integer, got {n_classes!r}")
