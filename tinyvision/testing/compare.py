r"""Compare a tinyvision model with a PyTorch model layer by layer: where do they start to differ?

:func:`compare_modules` runs both models on the same inputs with a forward hook on every named
submodule (tinyvision's and torch's names are the same: same state_dict keys, same module
tree), records every output, and — with ``backward=True`` — backpropagates the same seeded
random upstream gradient through both and compares every parameter's gradient and every
input's gradient. The report lists, per submodule call in execution order:

    name   the submodule's dotted name ("" is the whole model: shown as "(model)"); a module
           called more than once (torchvision's BasicBlock calls its ``relu`` twice) gets
           "#2", "#3" ... on its later calls; an output that is a tuple/list/dict gets one
           row per tensor in it, ``name[0]``, ``name['out']``
    shape  the output's shape
    max abs    max |a - b|            (a: tinyvision, b: torch)
    max rel    max |a - b| / |b|      over the elements where b != 0
    ok         |a - b| <= atol + rtol |b| everywhere (np.isclose), the project's criterion

*Execution order* is the order in which the calls **finish** (that is when a forward hook
fires): a layer comes before the block that contains it, the block before the stage. So the
first row beyond tolerance is the innermost, earliest layer whose output differs:
``report.first_divergence`` names it. When every output agrees but a gradient does not,
``first_divergence`` names the module owning a diverging parameter that ran *last* (the
first one the backward pass reaches): see ``report.first_gradient_divergence``.

Tolerances default to the project's table (:data:`~tinyvision.testing.TOLERANCES`) for the
dtype of the first floating input. Both models run as they are (``train()`` or ``eval()``, as
you left them; BatchNorm in train mode updates its running statistics in both); their
parameters' gradients are reset to None first and hold the compared gradients afterwards.

>>> import numpy as np, torch, tinyvision as tv                       # doctest: +SKIP
>>> report = tv.testing.compare_modules(tv_model, torch_model, x)     # doctest: +SKIP
>>> print(report); report.first_divergence                            # doctest: +SKIP
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..autograd import Tensor, set_grad_enabled
from .tolerances import tolerance

__all__ = ["compare_modules", "ComparisonReport", "ComparisonRow"]


@dataclass
class ComparisonRow:
    """One compared tensor: a submodule's output (``kind="output"``), a parameter's gradient
    (``"grad"``) or an input's gradient (``"input grad"``)."""

    name: str                  # display name: "layer1.0.conv1", "head[0]", "layer1.0.relu#2"
    module: str                # the submodule's dotted name ("" for the model itself)
    kind: str
    shape: tuple | None        # tinyvision's shape (None where it has no such tensor)
    torch_shape: tuple | None
    max_abs: float = float("nan")
    max_rel: float = float("nan")
    ok: bool | None = None     # None: only one side has this tensor (nothing to compare)
    note: str = ""


@dataclass
class ComparisonReport:
    """What :func:`compare_modules` found. ``print(report)`` shows it as a table."""

    outputs: list = field(default_factory=list)          # ComparisonRow per output, execution order
    gradients: list = field(default_factory=list)        # ComparisonRow per parameter, then inputs
    rtol: float = 0.0
    atol: float = 0.0
    _order: dict = field(default_factory=dict, repr=False)  # module name -> first finish index

    @property
    def first_output_divergence(self):
        """The first submodule, in execution order, whose output is beyond tolerance (or None)."""
        for row in self.outputs:
            if row.ok is False:
                return row.module
        return None

    @property
    def first_gradient_divergence(self):
        """Among modules owning a parameter whose gradient is beyond tolerance, the one that ran
        last in the forward pass, i.e. the first the backward pass reaches (or None)."""
        owners = [_owner(row.module, self._order) for row in self.gradients if row.kind == "grad" and row.ok is False]
        owners = [o for o in owners if o is not None]
        if not owners:
            return None
        return max(owners, key=lambda m: self._order[m])

    @property
    def first_divergence(self):
        """The first submodule beyond tolerance: forward outputs first, then gradients."""
        forward = self.first_output_divergence
        return forward if forward is not None else self.first_gradient_divergence

    @property
    def ok(self) -> bool:
        return all(row.ok is not False for row in self.outputs + self.gradients)

    def __str__(self):
        def fmt(v):
            return "-" if v != v else f"{v:.3e}"  # nan -> "-"

        def table(title, rows):
            width = max([len(title)] + [len(r.name) for r in rows]) + 2
            lines = [f"{title:<{width}}{'shape':<22}{'max abs':>12}{'max rel':>12}  ok"]
            for r in rows:
                shape = str(r.shape if r.shape is not None else r.torch_shape)
                flag = {True: "ok", False: "DIFFERS", None: "-"}[r.ok]
                lines.append(f"{r.name:<{width}}{shape:<22}{fmt(r.max_abs):>12}{fmt(r.max_rel):>12}  {flag}"
                             + (f"  ({r.note})" if r.note else ""))
            return lines

        lines = [f"compare_modules: rtol={self.rtol:g}, atol={self.atol:g}"]
        lines += table("output", self.outputs)
        if self.gradients:
            lines.append("")
            lines += table("gradient", self.gradients)
        lines.append("")
        lines.append(f"first divergence: {_display(self.first_divergence)}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"ComparisonReport({len(self.outputs)} outputs, {len(self.gradients)} gradients, "
                f"first_divergence={self.first_divergence!r})")


def _display(module_name):
    return "None" if module_name is None else (module_name or "(model)")


def _owner(param_row_module, order):
    """The innermost recorded module that owns a parameter ("layer1.0.conv1.weight" ->
    "layer1.0.conv1"); ``param_row_module`` is the parameter's name."""
    parts = param_row_module.split(".")
    for k in range(len(parts) - 1, -1, -1):
        candidate = ".".join(parts[:k])
        if candidate in order:
            return candidate
    return None


# ---- flattening outputs ------------------------------------------------------------------------
def _leaves(value, to_array, path=""):
    """(path, array) for every tensor in a (nested) tuple/list/dict output, in order."""
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from _leaves(v, to_array, f"{path}[{i}]")
    elif isinstance(value, dict):  # dict, OrderedDict
        for k, v in value.items():
            yield from _leaves(v, to_array, f"{path}[{k!r}]")
    else:
        a = to_array(value)
        if a is not None:
            yield path, a


def _tv_array(value):
    return value.numpy().copy() if isinstance(value, Tensor) else None


def _torch_array(value):
    import torch

    return value.detach().cpu().numpy().copy() if isinstance(value, torch.Tensor) else None


def _tv_tensors(value):
    """The tinyvision Tensors of an output, flattened like :func:`_leaves`."""
    return [t for _, t in _leaves(value, lambda v: v if isinstance(v, Tensor) else None)]


def _torch_tensors(value):
    import torch

    return [t for _, t in _leaves(value, lambda v: v if isinstance(v, torch.Tensor) else None)]


# ---- comparing two arrays -----------------------------------------------------------------------
def _compare(row, a, b, rtol, atol):
    row.shape, row.torch_shape = tuple(a.shape), tuple(b.shape)
    if a.shape != b.shape:
        row.ok, row.note = False, f"shape {a.shape} vs torch {b.shape}"
        return row
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a64.size == 0:
        row.max_abs, row.max_rel, row.ok = 0.0, 0.0, True
        return row
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.abs(a64 - b64)
        both_same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))  # equal infs and NaNs: no difference
        diff = np.where(both_same, 0.0, diff)
        diff = np.where(np.isnan(diff), np.inf, diff)
        nonzero = b64 != 0
        rel = np.where(nonzero, diff / np.abs(np.where(nonzero, b64, 1.0)), 0.0)
    row.max_abs = float(diff.max())
    row.max_rel = float(rel.max())
    row.ok = bool(np.isclose(a64, b64, rtol=rtol, atol=atol, equal_nan=True).all())
    return row


# ---- inputs ---------------------------------------------------------------------------------------
def _as_numpy(x):
    """Tensors of either framework -> arrays, inside lists/tuples/dicts too."""
    if isinstance(x, Tensor):
        return x.numpy()
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        return x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)):
        return type(x)(_as_numpy(v) for v in x)
    if isinstance(x, dict):
        return type(x)((k, _as_numpy(v)) for k, v in x.items())
    return x


def _convert(x, make, grad, top=True):
    """An array -> ``make(copy, requires_grad=...)`` (same dtype; integers as int64), recursively;
    anything else unchanged. Only top-level floating arrays get ``requires_grad=grad``."""
    if isinstance(x, np.ndarray):
        a = x.astype(np.int64) if x.dtype.kind in "iu" else x.copy()
        return make(a, requires_grad=bool(top and grad and a.dtype.kind == "f"))
    if isinstance(x, (list, tuple)):
        return type(x)(_convert(v, make, grad, top=False) for v in x)
    if isinstance(x, dict):
        return type(x)((k, _convert(v, make, grad, top=False)) for k, v in x.items())
    return x


# ---- the harness --------------------------------------------------------------------------------
def _record_outputs(model, to_array):
    """Register a forward hook on every named submodule; returns (records, handles).
    records: list of (module name, call number, output) in the order the hooks fire."""
    records, handles, calls = [], [], {}

    for name, m in model.named_modules():
        def hook(module, args, output, name=name):
            calls[name] = calls.get(name, 0) + 1
            # copy now: a later in-place op (ReLU(inplace=True)) may overwrite the tensor
            records.append((name, calls[name], list(_leaves(output, to_array))))
        handles.append(m.register_forward_hook(hook))
    return records, handles


def compare_modules(tv_module, torch_module, *inputs, backward: bool = True, rtol=None, atol=None, seed: int = 0):
    """Run ``tv_module`` and ``torch_module`` on the same ``inputs`` and compare them layer by layer.

    inputs: NumPy arrays (tinyvision Tensors and torch tensors are taken as their arrays); each
    becomes a tensor of the same dtype in both frameworks (floating ones with gradients when
    ``backward``; integer ones int64); arrays inside lists, tuples and dicts (a detector's
    images and targets) are converted too, without gradients; anything else is passed to both
    as it is.
    backward: also compare every parameter's gradient (matched by name) and every floating
    input's gradient, after backpropagating ``sum(g * y)`` over the model's outputs y with g
    drawn from ``np.random.default_rng(seed)`` — the same g for both.
    Returns a :class:`ComparisonReport` (``print`` it; ``.first_divergence``).
    """
    import torch

    arrays = [_as_numpy(x) for x in inputs]
    floats = [a.dtype for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    tol = tolerance(floats[0] if floats else np.float32)
    rtol = tol["rtol"] if rtol is None else rtol
    atol = tol["atol"] if atol is None else atol
    # top-level floating inputs get gradients (compared at the end); arrays nested in
    # lists/dicts (a detector's list of images, its target dicts) are converted without
    tv_in = [_convert(a, Tensor, backward) for a in arrays]
    th_in = [_convert(a, lambda v, requires_grad: torch.tensor(v, requires_grad=requires_grad), backward)
             for a in arrays]

    tv_module.zero_grad(set_to_none=True)
    torch_module.zero_grad(set_to_none=True)
    tv_records, tv_handles = _record_outputs(tv_module, _tv_array)
    th_records, th_handles = _record_outputs(torch_module, _torch_array)
    try:
        with torch.set_grad_enabled(backward), set_grad_enabled(backward):
            y_tv = tv_module(*tv_in)
            y_th = torch_module(*th_in)
    finally:
        for h in tv_handles + th_handles:
            h.remove()

    report = ComparisonReport(rtol=rtol, atol=atol)
    theirs = {(name, call): leaves for name, call, leaves in th_records}
    seen = set()
    for name, call, leaves in tv_records:
        report._order.setdefault(name, len(report._order))
        seen.add((name, call))
        th_leaves = dict(theirs.get((name, call), []))
        base = (name or "(model)") + (f"#{call}" if call > 1 else "")
        for path, a in leaves:
            row = ComparisonRow(base + path, name, "output", tuple(a.shape), None)
            if path in th_leaves:
                _compare(row, a, th_leaves[path], rtol, atol)
            else:
                row.note = "no such output in torch" if (name, call) in theirs else "not called in torch"
            report.outputs.append(row)
    for name, call, leaves in th_records:  # what only torch ran
        if (name, call) not in seen:
            base = (name or "(model)") + (f"#{call}" if call > 1 else "")
            for path, b in leaves:
                report.outputs.append(ComparisonRow(base + path, name, "output", None, tuple(b.shape),
                                                    note="not called in tinyvision"))

    if backward:
        _compare_gradients(report, tv_module, torch_module, y_tv, y_th, tv_in, th_in, seed, rtol, atol)
    return report


def _compare_gradients(report, tv_module, torch_module, y_tv, y_th, tv_in, th_in, seed, rtol, atol):
    import torch

    outs_tv, outs_th = _tv_tensors(y_tv), _torch_tensors(y_th)
    if len(outs_tv) != len(outs_th):
        raise ValueError(f"compare_modules: the models return {len(outs_tv)} vs {len(outs_th)} tensors; "
                         "cannot backpropagate the same gradient")
    rng = np.random.default_rng(seed)
    loss_tv = loss_th = None
    for a, b in zip(outs_tv, outs_th):
        if not (a.requires_grad and b.requires_grad) or a.dtype.kind != "f":
            continue
        if a.shape != tuple(b.shape):
            continue  # already reported as an output difference
        g = rng.standard_normal(a.shape).astype(a.dtype)
        lo, lt = (a * Tensor(g)).sum(), (b * torch.from_numpy(g)).sum()
        loss_tv = lo if loss_tv is None else loss_tv + lo
        loss_th = lt if loss_th is None else loss_th + lt
    if loss_tv is None:
        return
    loss_tv.backward()
    loss_th.backward()

    def grad_of(p, torch_side):
        if p.grad is None:
            return np.zeros(tuple(p.shape), dtype=np.float64)
        return p.grad.detach().cpu().numpy() if torch_side else p.grad.numpy()

    th_params = OrderedDict(torch_module.named_parameters())
    for name, p in tv_module.named_parameters():
        row = ComparisonRow(name, name, "grad", tuple(p.shape), None)
        if name in th_params:
            _compare(row, grad_of(p, False), grad_of(th_params.pop(name), True), rtol, atol)
        else:
            row.note = "no such parameter in torch"
        report.gradients.append(row)
    for name, q in th_params.items():
        report.gradients.append(ComparisonRow(name, name, "grad", None, tuple(q.shape),
                                              note="no such parameter in tinyvision"))
    for k, (a, b) in enumerate(zip(tv_in, th_in)):
        if isinstance(a, Tensor) and a.requires_grad:
            row = ComparisonRow(f"input {k}", "", "input grad", a.shape, None)
            report.gradients.append(_compare(row, grad_of(a, False), grad_of(b, True), rtol, atol))
