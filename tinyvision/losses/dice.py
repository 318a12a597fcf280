r"""Dice, Jaccard and Tversky losses for segmentation: the lesson's formula, and smp's classes.

Shapes: p (probabilities) and y (targets) alike, any shape; the sums run over ``dims``
(all of them when ``dims`` is None), one score per remaining position (one per class, in
the classes below).

**From F1 to Dice.** For a hard prediction, a class's F1 score is

    F1 = 2 TP / (2 TP + FN + FP).

Let the prediction become soft, p_i in [0, 1], against labels y_i in {0, 1}. The soft counts
are TP = Σ p_i y_i, FP = Σ p_i (1 - y_i), FN = Σ (1 - p_i) y_i, and

    2 TP + FN + FP = 2 Σ p y + Σ p - Σ p y + Σ y - Σ p y = Σ p_i + Σ y_i,

so F1 becomes the soft Dice coefficient and its loss

    D = 2 Σ p_i y_i / Σ (p_i + y_i),        L = 1 - D.

**Its gradient** (quotient rule; N = 2 Σ p y the numerator, Q = Σ (p + y) the denominator):

    ∂D/∂p_i = (2 y_i Q - N · 1) / Q²  = (2 y_i - D) / Q,        ∂L/∂p_i = (D - 2 y_i) / Q.

A pixel of the class (y_i = 1) is pushed up with strength (2 - D)/Q, a background pixel
(y_i = 0) pushed down with D/Q: every pixel's pull depends on the whole mask through D and Q,
which is why Dice does not drown a small object in background the way a per-pixel mean does.

**Three forms of "Σ p y", and where they agree** (``variant=``):

* ``"product"``: the lesson's formula above (and smp < 0.4's): D = (2 Σ p y + s) / (Σ p + Σ y + s).
* ``"l1"`` (segmentation_models_pytorch >= 0.4, the default of the classes): the intersection
  read off an L1 distance, I = (Σ p + Σ y - Σ |p - y|) / 2, and D = (I + s) / (½ (Σ p + Σ y) + s).
  For y_i in {0, 1} and p_i in [0, 1], |p - y| = p + y - 2 p y, so I = Σ p y: with s = 0 it is
  the product form exactly. It differs for soft targets (I is then Σ min(p, y), a fuzzy-set
  intersection, which reaches D = 1 only when p = y, while the product form's optimum for
  y = 0.5 is not p = 0.5) and in how the smoothing enters (s here is 2 s there).
  ∂I/∂p_i = (1 - sign(p_i - y_i)) / 2 (sign(0) = 0, PyTorch's subgradient of |x|), which is
  y_i for binary y and p strictly inside (0, 1).
* ``"squared"`` (V-Net, Milletari et al. 2016, https://arxiv.org/abs/1606.04797): squares in
  the denominator, D = (2 Σ p y + s) / (Σ p² + Σ y² + s). Same value as the others only at
  p = y; the gradient (2 y_i - 2 p_i D) / Q vanishes at p_i = y_i D, not only at p_i = y_i.

**0/0.** Every denominator is clamped from below, max(Q, eps), as smp does; an empty target and
an empty prediction so give D = s / max(s, eps) (0 when s = 0). The classes then set the loss
of a class with no positive target pixel to 0 (smp's rule, see below). At Q = eps exactly the
clamp passes no gradient to Q (PyTorch's ``clamp_min`` at its kink).

The classes (:class:`DiceLoss`, :class:`JaccardLoss`, :class:`TverskyLoss`) are
segmentation_models_pytorch 0.6.0's, number for number and gradient for gradient:

1. activation when ``from_logits``: multiclass ``exp(log_softmax(x, dim=1))``, binary and
   multilabel ``exp(logsigmoid(x))``;
2. shapes: binary p, y -> (N, 1, HW); multiclass y (N, H, W) one-hot -> (N, C, HW); multilabel
   (N, C, HW). ``ignore_index`` pixels are zeroed in both p and y;
3. one Tversky score per class, summed over dims (0, 2) (the batch is pooled):
   T = (I + s) / max(I + α FP + β FN + s, eps) with FP = Σ p - I, FN = Σ y - I
   (Dice: α = β = ½, denominator ½ (Σ p + Σ y) + s; Jaccard: α = β = 1, Σ p + Σ y - I + s);
4. loss per class 1 - T (``log_loss``: -log(max(T, eps))); **a class with no positive target
   pixel in the batch gets loss 0 but stays in the mean**; then ``classes`` selects, then the
   (``class_weights``-weighted) mean; Tversky raises the mean to the power ``gamma``.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from ..autograd import Function, Tensor
from ..backend import get_array_module
from ..nn.module import Module

__all__ = [
    "dice_loss", "DiceLossFunction", "soft_tversky_score", "soft_dice_score", "soft_jaccard_score",
    "DiceLoss", "JaccardLoss", "TverskyLoss", "DICE_VARIANTS",
]

BINARY_MODE, MULTICLASS_MODE, MULTILABEL_MODE = "binary", "multiclass", "multilabel"
_MODES = (BINARY_MODE, MULTICLASS_MODE, MULTILABEL_MODE)
DICE_VARIANTS = ("product", "l1", "squared")
_REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------------------------
# The lesson's loss, with its gradient written out
# --------------------------------------------------------------------------------------
def _axes(dims, ndim, op):
    if dims is None:
        return tuple(range(ndim))
    dims = (dims,) if isinstance(dims, numbers.Integral) else tuple(dims)
    out = []
    for d in dims:
        if not -ndim <= int(d) < ndim:
            raise ValueError(f"{op}: dim {d} is out of range for inputs with {ndim} dimensions")
        out.append(int(d) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dims {dims} repeat a dimension")
    return tuple(sorted(out))


class DiceLossFunction(Function):
    r"""L = 1 - D per position of the dims kept, then reduced; D in one of three forms.

    Shapes: p, y alike; D, L have the shape of p with ``dims`` removed (kept as size 1 inside).
    With Σ over dims and Qc = max(Q, eps), k = [Q > eps] (0 where the clamp holds Q at eps):

        form       D = N / Qc                                  ∂D/∂p_i                       ∂D/∂y_i
        product    N = 2Σpy + s,  Q = Σp + Σy + s              (2 y_i - k D) / Qc            (2 p_i - k D) / Qc
        l1         N = I + s,     Q = ½(Σp + Σy) + s           (a_i - ½ k D) / Qc            (b_i - ½ k D) / Qc
                   I = ½(Σp + Σy - Σ|p - y|),  a_i = ½(1 - sign(p_i - y_i)),  b_i = ½(1 + sign(p_i - y_i))
        squared    N = 2Σpy + s,  Q = Σp² + Σy² + s            (2 y_i - 2 p_i k D) / Qc      (2 p_i - 2 y_i k D) / Qc

    and gp = -gL ∂D/∂p, gy = -gL ∂D/∂y, with gL the upstream gradient of each position's loss
    (divided by the number of positions for ``reduction="mean"``), broadcast over the dims summed.
    """

    def __init__(self, axes, smooth, eps, variant, reduction):
        self.axes, self.smooth, self.eps = axes, smooth, eps
        self.variant, self.reduction = variant, reduction

    def forward(self, p, y):
        xp = get_array_module(p, y)
        s, ax = self.smooth, self.axes
        if self.variant == "product":
            n = 2 * (p * y).sum(axis=ax, keepdims=True) + s
            q = p.sum(axis=ax, keepdims=True) + y.sum(axis=ax, keepdims=True) + s
        elif self.variant == "l1":
            total = p.sum(axis=ax, keepdims=True) + y.sum(axis=ax, keepdims=True)
            intersection = (total - xp.abs(p - y).sum(axis=ax, keepdims=True)) / 2
            n = intersection + s
            q = total / 2 + s
        else:  # "squared"
            n = 2 * (p * y).sum(axis=ax, keepdims=True) + s
            q = (p * p).sum(axis=ax, keepdims=True) + (y * y).sum(axis=ax, keepdims=True) + s
        qc = xp.maximum(q, self.eps)
        d = n / qc
        self.save_for_backward(p, y, d, qc, (q > self.eps).astype(p.dtype))
        loss = (1 - d).squeeze(axis=ax) if ax else 1 - d
        loss = loss.astype(p.dtype, copy=False)
        if self.reduction == "none":
            return loss
        return loss.mean() if self.reduction == "mean" else loss.sum()

    def backward(self, gl):
        p, y, d, qc, k = self.saved
        xp = get_array_module(p, gl)
        if self.reduction == "none":
            g = gl.reshape(d.shape)                 # one upstream value per position kept
        else:
            g = gl / d.size if self.reduction == "mean" else gl
        if self.variant == "product":
            dd_dp, dd_dy = (2 * y - k * d) / qc, (2 * p - k * d) / qc
        elif self.variant == "l1":
            sign = xp.sign(p - y)
            dd_dp, dd_dy = ((1 - sign) / 2 - k * d / 2) / qc, ((1 + sign) / 2 - k * d / 2) / qc
        else:  # "squared"
            dd_dp, dd_dy = (2 * y - 2 * p * k * d) / qc, (2 * p - 2 * y * k * d) / qc
        gp = (-g * dd_dp).astype(p.dtype, copy=False)
        gy = (-g * dd_dy).astype(y.dtype, copy=False)
        return gp, gy


def _float_array_or_tensor(x, like, name, op):
    """Targets as a float Tensor/array of ``like``'s dtype (ints and bools are 0/1 labels)."""
    if isinstance(x, Tensor):
        if x.dtype != like.dtype:
            x = x.to(like.dtype) if x.dtype.kind == "f" else Tensor(x.data.astype(like.dtype))
        return x
    xp = get_array_module(like.data if isinstance(like, Tensor) else like)
    try:
        return xp.asarray(x).astype(like.dtype, copy=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{op}: {name} cannot be read as a numeric array: {err}") from None


def dice_loss(probabilities, targets, dims=None, smooth: float = 0.0, eps: float = 1e-7,
              variant: str = "product", reduction: str = "mean"):
    r"""Soft Dice loss L = 1 - 2 Σ p_i y_i / Σ (p_i + y_i), the lesson's formula (module docstring).

    probabilities (Tensor[*]): p in [0, 1] (apply softmax/sigmoid first).
    targets (Tensor[*] or array): y, the same shape; 0/1 labels (ints, bools or floats) or soft
        labels in [0, 1]. A float Tensor that requires grad gets a gradient too.
    dims: the axes summed into one score (None: all, one score for the whole tensor; (0, 2) on
        (N, C, HW): one per class, the batch pooled, as smp).
    smooth, eps: D = (N + smooth) / max(Q + smooth, eps), see :class:`DiceLossFunction`.
    variant: "product" (the lesson, default), "l1" (smp >= 0.4) or "squared" (V-Net).
    reduction: "mean" (default) or "sum" over the scores, or "none".

    >>> import numpy as np, tinyvision as tv
    >>> p = tv.tensor(np.array([0.9, 0.8, 0.1, 0.0]), requires_grad=True)
    >>> loss = dice_loss(p, np.array([1, 1, 0, 0]))
    >>> round(loss.item(), 6)                 # 1 - 2 * 1.7 / (1.8 + 2)
    0.105263
    >>> loss.backward(); np.round(p.grad.numpy(), 6)   # (D - 2 y_i) / Q
    array([-0.290859, -0.290859,  0.235457,  0.235457])
    """
    op = "dice_loss"
    if variant not in DICE_VARIANTS:
        raise ValueError(f"{op}: variant must be one of {DICE_VARIANTS}, got {variant!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if getattr(probabilities, "dtype", np.dtype("O")).kind != "f":
        raise TypeError(f"{op}: probabilities must be a floating-point Tensor, got "
                        f"{type(probabilities).__name__} of dtype {getattr(probabilities, 'dtype', None)}")
    targets = _float_array_or_tensor(targets, probabilities, "targets", op)
    if tuple(probabilities.shape) != tuple(targets.shape):
        raise ValueError(f"{op}: probabilities of shape {tuple(probabilities.shape)} and targets of "
                         f"shape {tuple(targets.shape)} must have the same shape")
    if eps <= 0:
        raise ValueError(f"{op}: eps must be > 0 (it bounds the denominator away from 0), got {eps}")
    axes = _axes(dims, probabilities.ndim, op)
    return DiceLossFunction(axes, float(smooth), float(eps), variant, reduction)(probabilities, targets)


# --------------------------------------------------------------------------------------
# smp's scores, composed of differentiable ops (the classes below use these)
# --------------------------------------------------------------------------------------
def soft_tversky_score(output, target, alpha: float, beta: float, smooth: float = 0.0,
                       eps: float = 1e-7, dims=None, variant: str = "l1"):
    r"""T = (I + s) / max(I + α FP + β FN + s, eps), FP = Σ p - I, FN = Σ y - I (smp's formula).

    output (Tensor[*]) probabilities; target (array or Tensor[*]) the same shape; sums over
    ``dims`` (None: all). ``variant`` picks the intersection I: "l1" (smp >= 0.4,
    I = (Σp + Σy - Σ|p - y|) / 2), "product" (I = Σ p y) or "squared" (V-Net: Σp², Σy² in
    place of Σp, Σy; I = Σ p y). α = β = ½ is Dice, α = β = 1 Jaccard (IoU).
    """
    if variant not in DICE_VARIANTS:
        raise ValueError(f"soft_tversky_score: variant must be one of {DICE_VARIANTS}, got {variant!r}")
    if tuple(output.shape) != tuple(target.shape):
        raise ValueError(f"soft_tversky_score: output of shape {tuple(output.shape)} and target of shape "
                         f"{tuple(target.shape)} must have the same shape")
    dims = None if dims is None else _axes(dims, output.ndim, "soft_tversky_score")
    if variant == "squared":
        output_sum, target_sum = F.sum(output * output, dim=dims), F.sum(target * target, dim=dims)
    else:
        output_sum, target_sum = F.sum(output, dim=dims), F.sum(target, dim=dims)
    if variant == "l1":
        difference = F.sum(F.abs(output - target), dim=dims)     # ‖p - y‖₁
        intersection = (output_sum + target_sum - difference) / 2  # soft TP
    else:
        intersection = F.sum(output * target, dim=dims)
    fp = output_sum - intersection
    fn = target_sum - intersection
    denominator = intersection + alpha * fp + beta * fn + smooth
    return (intersection + smooth) / F.clamp(denominator, min=eps)


def soft_dice_score(output, target, smooth: float = 0.0, eps: float = 1e-7, dims=None, variant: str = "l1"):
    """Dice = Tversky with α = β = ½: (I + s) / max(½ (Σp + Σy) + s, eps)."""
    return soft_tversky_score(output, target, 0.5, 0.5, smooth, eps, dims, variant)


def soft_jaccard_score(output, target, smooth: float = 0.0, eps: float = 1e-7, dims=None, variant: str = "l1"):
    """Jaccard (IoU) = Tversky with α = β = 1: (I + s) / max(Σp + Σy - I + s, eps)."""
    return soft_tversky_score(output, target, 1.0, 1.0, smooth, eps, dims, variant)


# --------------------------------------------------------------------------------------
# The loss classes (segmentation_models_pytorch 0.6.0)
# --------------------------------------------------------------------------------------
def _data(x):
    return x.data if isinstance(x, Tensor) else x


class _SoftSetLoss(Module):
    """Shared pipeline of DiceLoss / JaccardLoss / TverskyLoss (steps 1-4 of the module docstring)."""

    _name = "loss"

    def __init__(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
                 ignore_index=None, eps=1e-7, class_weights=None, variant="l1"):
        super().__init__()
        name = type(self).__name__
        if mode not in _MODES:
            raise ValueError(f"{name}: mode must be one of {_MODES}, got {mode!r}")
        if variant not in DICE_VARIANTS:
            raise ValueError(f"{name}: variant must be one of {DICE_VARIANTS}, got {variant!r}")
        if classes is not None and mode == BINARY_MODE:
            raise ValueError(f"{name}: classes cannot be selected in binary mode (there is one channel)")
        if class_weights is not None and mode == BINARY_MODE:
            raise ValueError(f"{name}: class_weights are not supported in binary mode")
        if eps <= 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps}")
        self.mode, self.log_loss, self.from_logits = mode, bool(log_loss), bool(from_logits)
        self.smooth, self.eps, self.ignore_index, self.variant = float(smooth), float(eps), ignore_index, variant
        self.classes = None if classes is None else np.asarray(classes, dtype=np.int64).reshape(-1)
        # float32, as smp stores them (to_tensor(..., dtype=torch.float)): the same weighted mean
        self.class_weights = None if class_weights is None else np.asarray(class_weights, dtype=np.float32).reshape(-1)

    def extra_repr(self):
        return (f"mode={self.mode!r}, log_loss={self.log_loss}, from_logits={self.from_logits}, "
                f"smooth={self.smooth}, ignore_index={self.ignore_index}, eps={self.eps}, variant={self.variant!r}")

    # -- the score and the aggregation are what the three losses change -------------------
    def compute_score(self, output, target, dims):
        raise NotImplementedError

    def aggregate_loss(self, loss):
        if self.class_weights is None:
            return F.mean(loss)
        w = self.class_weights if self.classes is None else self.class_weights[self.classes]
        # Σ w in float32 as smp does (weights.sum() on its float32 tensor), Σ l w in the loss's dtype
        return F.sum(loss * w.astype(loss.dtype)) / float(w.sum(dtype=np.float32))

    # -- input checks ---------------------------------------------------------------------
    def _check(self, y_pred, y_true):
        name = type(self).__name__
        if not isinstance(y_pred, Tensor):
            y_pred = Tensor(get_array_module(y_pred).asarray(y_pred))
        if y_pred.dtype.kind != "f":
            raise TypeError(f"{name}: y_pred must be floating point (logits or probabilities), got dtype {y_pred.dtype}")
        xp = get_array_module(y_pred.data)
        t = _data(y_true)
        t = xp.asarray(t)
        ps, ts = tuple(y_pred.shape), tuple(t.shape)
        if y_pred.ndim < 2:
            raise ValueError(f"{name}: y_pred must be (N, C, ...), got shape {ps}")
        n, c = ps[0], ps[1]
        ign = self.ignore_index
        valid = t if ign is None else t[t != ign]
        if self.mode == MULTICLASS_MODE:
            if ts != (n,) + ps[2:]:
                raise ValueError(f"{name} (multiclass): y_true must be class indices of shape (N, *spatial) = "
                                 f"{(n,) + ps[2:]} for y_pred of shape {ps}, got shape {ts}")
            if t.dtype.kind not in "iu":
                raise TypeError(f"{name} (multiclass): y_true must hold integer class indices, got dtype {t.dtype}")
            if valid.size and (int(valid.min()) < 0 or int(valid.max()) >= c):
                bad = int(valid.min()) if int(valid.min()) < 0 else int(valid.max())
                raise ValueError(f"{name} (multiclass): y_true values must lie in [0, {c}) (C = y_pred.shape[1]"
                                 f"{'' if ign is None else f', or equal ignore_index={ign}'}), found {bad}")
        else:
            if self.mode == BINARY_MODE:
                if c != 1:
                    raise ValueError(f"{name} (binary): y_pred must have one channel, (N, 1, ...), got shape {ps}")
                ok = ts == ps or ts == (n,) + ps[2:]
                want = f"{ps} or {(n,) + ps[2:]}"
            else:
                ok, want = ts == ps, f"{ps}"
            if not ok:
                raise ValueError(f"{name} ({self.mode}): y_true of shape {ts} does not match y_pred of shape "
                                 f"{ps} (expected {want})")
            if valid.size and (float(valid.min()) < 0 or float(valid.max()) > 1):
                bad = float(valid.min()) if float(valid.min()) < 0 else float(valid.max())
                raise ValueError(f"{name} ({self.mode}): y_true values must lie in [0, 1]"
                                 f"{'' if ign is None else f' (or equal ignore_index={ign})'}, found {bad}")
        if self.classes is not None and self.classes.size and (self.classes.min() < -c or self.classes.max() >= c):
            raise ValueError(f"{name}: classes {self.classes.tolist()} out of range for {c} channels")
        if self.class_weights is not None and self.class_weights.size != c:
            raise ValueError(f"{name}: class_weights has {self.class_weights.size} entries for {c} channels")
        return y_pred, t

    def forward(self, y_pred, y_true):
        y_pred, t = self._check(y_pred, y_true)
        xp = get_array_module(y_pred.data)
        if self.from_logits:   # log-then-exp: PyTorch-stable, and smp's exact numbers
            if self.mode == MULTICLASS_MODE:
                y_pred = F.exp(F.log_softmax(y_pred, dim=1))
            else:
                y_pred = F.exp(F.logsigmoid(y_pred))
        bs, num_classes = y_pred.shape[0], y_pred.shape[1]
        dims = (0, 2)

        if self.mode == MULTICLASS_MODE:
            t = t.reshape(bs, -1)                                   # (N, HW)
            p = F.reshape(y_pred, (bs, num_classes, -1))            # (N, C, HW)
            if self.ignore_index is not None:
                mask = t != self.ignore_index                       # (N, HW)
                p = p * mask[:, None, :].astype(p.dtype)
                t = xp.where(mask, t, 0)
            else:
                mask = None
            y = (t[:, None, :] == xp.arange(num_classes)[None, :, None])   # one-hot (N, C, HW)
            if mask is not None:
                y = y & mask[:, None, :]
        else:
            channels = 1 if self.mode == BINARY_MODE else num_classes
            t = t.reshape(bs, channels, -1)                         # (N, C, HW)
            p = F.reshape(y_pred, (bs, channels, -1))
            y = t
            if self.ignore_index is not None:
                mask = t != self.ignore_index
                p = p * mask.astype(p.dtype)
                y = t * mask
        y = y.astype(p.dtype)

        scores = self.compute_score(p, y, dims)                     # (C,)
        if self.log_loss:
            loss = -F.log(F.clamp(scores, min=self.eps))
        else:
            loss = 1.0 - scores
        # no positive target pixel in the batch: the score is undefined, the loss 0 (kept in the mean)
        present = (y.sum(axis=dims) > 0).astype(p.dtype)
        loss = loss * present
        if self.classes is not None:
            loss = loss[self.classes]
        return self.aggregate_loss(loss)


class DiceLoss(_SoftSetLoss):
    """smp's ``DiceLoss(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
    ignore_index=None, eps=1e-7, class_weights=None)``; ``variant`` ("l1" default, as smp >= 0.4;
    "product"; "squared" for V-Net) picks the intersection form (module docstring).

    y_pred (N, C, H, W) logits (or probabilities with ``from_logits=False``);
    y_true (N, H, W) class indices (multiclass), (N, C, H, W) 0/1 (multilabel),
    (N, 1, H, W) or (N, H, W) 0/1 (binary). Returns a scalar Tensor.

    >>> import numpy as np, tinyvision as tv
    >>> logits = tv.tensor(np.zeros((1, 2, 2, 2)))
    >>> loss = DiceLoss("multiclass")(logits, np.array([[[0, 0], [0, 1]]]))  # p = 1/2 everywhere
    >>> round(loss.item(), 6)      # mean of 1 - 1.5/2.5 (class 0) and 1 - 0.5/1.5 (class 1)
    0.533333
    """

    def compute_score(self, output, target, dims):
        return soft_dice_score(output, target, self.smooth, self.eps, dims, self.variant)


class JaccardLoss(_SoftSetLoss):
    """smp's ``JaccardLoss`` (IoU loss): as :class:`DiceLoss` with T = I / (Σp + Σy - I)."""

    def compute_score(self, output, target, dims):
        return soft_jaccard_score(output, target, self.smooth, self.eps, dims, self.variant)


class TverskyLoss(_SoftSetLoss):
    """smp's ``TverskyLoss(mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
    ignore_index=None, eps=1e-7, alpha=0.5, beta=0.5, gamma=1.0, class_weights=None)``.

    α weighs false positives, β false negatives (α = β = ½: Dice); the mean loss is raised to
    ``gamma`` (the "focal Tversky" loss for gamma != 1), as smp does.
    """

    def __init__(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0,
                 ignore_index=None, eps=1e-7, alpha=0.5, beta=0.5, gamma=1.0, class_weights=None,
                 variant="l1"):
        super().__init__(mode, classes, log_loss, from_logits, smooth, ignore_index, eps, class_weights, variant)
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)

    def extra_repr(self):
        return f"{super().extra_repr()}, alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}"

    def compute_score(self, output, target, dims):
        return soft_tversky_score(output, target, self.alpha, self.beta, self.smooth, self.eps, dims, self.variant)

    def aggregate_loss(self, loss):
        return super().aggregate_loss(loss) ** self.gamma
