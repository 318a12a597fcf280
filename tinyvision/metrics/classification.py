"""Classification metrics: confusion matrix, precision, recall, F-beta, accuracy, specificity,
the precision-recall curve and average precision.

Arrays in, numbers out. Inputs may be NumPy arrays, Python lists, tinyvision Tensors or CuPy
arrays (copied to the host); results are NumPy arrays or Python floats.

Semantics follow scikit-learn's (``sklearn.metrics``), the reference people quote:

* ``confusion_matrix``: rows are the true labels, columns the predicted ones,
  ``C[i, j]`` = number of samples with true label ``labels[i]`` predicted as ``labels[j]``.
* For one class c (one-vs-rest), with TP, FP, FN, TN counted from that matrix::

      precision   = TP / (TP + FP)          (undefined when nothing was predicted as c)
      recall      = TP / (TP + FN)          (undefined when c never occurs in y_true)
      specificity = TN / (TN + FP)          (undefined when every sample is of class c)
      F_beta      = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)
                                            (undefined only when c is absent from both)

  F_beta written with counts equals the weighted harmonic mean
  (1 + b^2) P R / (b^2 P + R) wherever P and R are defined and not both 0, and it stays
  defined (= 0) when only one of P, R is undefined — scikit-learn's rule (>= 1.3).
* ``zero_division`` is the value an undefined ratio (0/0) takes: ``"warn"`` (the default, as in
  scikit-learn: 0 and an :class:`UndefinedMetricWarning`), ``0``, ``1`` or ``nan``.
* ``average``:

  ``None``        one score per label, in the order of ``labels``;
  ``"binary"``    the score of ``pos_label`` only (the data must have at most two labels);
  ``"micro"``     ratios of the counts summed over the labels; for single-label multiclass data
                  micro precision = micro recall = micro F1 = accuracy;
  ``"macro"``     the unweighted mean of the per-label scores (NaN scores, i.e.
                  ``zero_division=nan``, are left out of the mean, as scikit-learn does);
  ``"weighted"``  the mean weighted by each label's support (number of true samples); when every
                  support is 0 the weights are dropped (plain mean).

Example
-------
>>> y_true = [0, 1, 2, 2, 1, 0]
>>> y_pred = [0, 2, 2, 2, 1, 1]
>>> confusion_matrix(y_true, y_pred)
array([[1, 1, 0],
       [0, 1, 1],
       [0, 0, 2]])
>>> precision_score(y_true, y_pred, average=None)
array([1.        , 0.5       , 0.66666667])
>>> round(f1_score(y_true, y_pred, average="macro"), 6)
0.655556
>>> accuracy_score(y_true, y_pred)
0.6666666666666666
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

__all__ = [
    "UndefinedMetricWarning",
    "confusion_matrix",
    "multilabel_counts",
    "precision_recall_fscore_support",
    "precision_score",
    "recall_score",
    "f1_score",
    "fbeta_score",
    "specificity_score",
    "accuracy_score",
    "precision_recall_curve",
    "average_precision_score",
]

_AVERAGES = (None, "binary", "micro", "macro", "weighted")


class UndefinedMetricWarning(UserWarning):
    """A ratio was 0/0 and ``zero_division="warn"`` replaced it by 0 (scikit-learn's warning)."""


# --------------------------------------------------------------------------------------
# Input handling (shared by the other metric modules)
# --------------------------------------------------------------------------------------
def _as_numpy(x, name: str) -> np.ndarray:
    """``x`` (list, NumPy/CuPy array, tinyvision Tensor) as a host NumPy array."""
    if type(x).__name__ == "Tensor" and hasattr(x, "numpy"):
        return x.numpy()
    if type(x).__module__.startswith("cupy"):
        return x.get()
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise ValueError(f"{name} cannot be read as an array: {err}") from None


def _check_no_nan(a: np.ndarray, name: str) -> None:
    if a.dtype.kind in "fc" and np.isnan(a).any():
        first = int(np.flatnonzero(np.isnan(a).ravel())[0])
        raise ValueError(f"{name} contains NaN (at flat index {first}); shape {a.shape}")


def _as_labels(x, name: str) -> np.ndarray:
    """A 1-D label vector: integers, bools, or integral floats (kept as given), or strings."""
    a = _as_numpy(x, name)
    if a.ndim == 0:
        raise ValueError(f"{name} must be a 1-D sequence of labels, got a scalar")
    if a.ndim != 1:
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        else:
            raise ValueError(f"{name} must be 1-D (one label per sample), got shape {a.shape}")
    if a.dtype.kind in "fc":
        _check_no_nan(a, name)
        if a.dtype.kind == "c" or not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ValueError(
                f"{name} holds non-integer values (e.g. {a[a != np.round(a)][:3].tolist()}): "
                "labels must be integers; for scores use precision_recall_curve")
    elif a.dtype.kind == "O":
        raise ValueError(f"{name} has mixed or unsupported element types (dtype object)")
    return a


def _check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same length, got shapes {a.shape} and {b.shape}")


def _check_zero_division(zero_division):
    """Return (value, warn) for an allowed zero_division setting."""
    if isinstance(zero_division, str):
        if zero_division == "warn":
            return 0.0, True
    elif isinstance(zero_division, numbers.Real) and not isinstance(zero_division, bool):
        value = float(zero_division)
        if value in (0.0, 1.0) or np.isnan(value):
            return value, False
    raise ValueError(f'zero_division must be "warn", 0, 1 or nan, got {zero_division!r}')


def _divide(num, den, zero_division, what: str):
    """num / den elementwise (float64); where den == 0 the zero_division value (and a warning)."""
    value, warn = _check_zero_division(zero_division)
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, value, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    if warn and np.any(den == 0):
        warnings.warn(f"{what} is ill-defined (0/0) for some labels and was set to 0; "
                      "use zero_division to choose the value", UndefinedMetricWarning, stacklevel=3)
    return out


def _label_index(values: np.ndarray, labels: np.ndarray):
    """Position of each value in ``labels`` (any order) and a mask of the values found there."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    pos = np.searchsorted(sorted_labels, values)
    pos_clipped = np.minimum(pos, len(labels) - 1)
    found = (pos < len(labels)) & (sorted_labels[pos_clipped] == values)
    return order[pos_clipped], found


def _resolve_labels(y_true, y_pred, labels, num_classes, name_labels="labels"):
    """The label list of the matrix, and y_true / y_pred as indices into it (or -1)."""
    if labels is not None and num_classes is not None:
        raise ValueError("give labels or num_classes, not both")
    numeric = (y_true.dtype.kind in "biuf", y_pred.dtype.kind in "biuf")
    if y_true.size and y_pred.size and numeric[0] != numeric[1]:
        raise ValueError(f"y_true (dtype {y_true.dtype}) and y_pred (dtype {y_pred.dtype}) mix "
                         "numbers and strings")
    if num_classes is not None:
        if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        for a, name in ((y_true, "y_true"), (y_pred, "y_pred")):
            if a.dtype.kind not in "iubf":
                raise ValueError(f"num_classes needs integer labels, {name} has dtype {a.dtype}")
            bad = (a < 0) | (a >= num_classes)
            if bad.any():
                raise ValueError(
                    f"{name} has labels outside [0, {num_classes}) (num_classes={num_classes}), "
                    f"e.g. {a[bad][:3].tolist()}; shape {a.shape}")
        return (np.arange(num_classes), y_true.astype(np.int64, copy=False),
                y_pred.astype(np.int64, copy=False))
    if labels is None:
        if y_true.size == 0 and y_pred.size == 0:
            lab = np.zeros(0, dtype=np.int64)
        else:
            lab = np.unique(np.concatenate([y_true, y_pred]))
    else:
        lab = _as_numpy(labels, name_labels)
        if lab.ndim != 1 or lab.size == 0:
            raise ValueError(f"{name_labels} must be a non-empty 1-D list, got shape {lab.shape}")
        if np.unique(lab).size != lab.size:
            raise ValueError(f"{name_labels} has repeated values: {lab.tolist()}")
        for a, name in ((y_true, "y_true"), (y_pred, "y_pred")):
            if a.size and (a.dtype.kind in "biuf") != (lab.dtype.kind in "biuf"):
                raise ValueError(f"{name_labels} (dtype {lab.dtype}) and {name} (dtype "
                                 f"{a.dtype}) mix numbers and strings")
    if lab.size == 0:
        return lab, y_true.astype(np.int64), y_pred.astype(np.int64)
    it, ft = _label_index(y_true, lab)
    ip, fp = _label_index(y_pred, lab)
    return lab, np.where(ft, it, -1), np.where(fp, ip, -1)


# --------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------
def confusion_matrix(y_true, y_pred, labels=None, num_classes=None, sample_weight=None,
                     normalize=None):
    """Confusion matrix ``C (K, K)``: ``C[i, j]`` = samples of true label ``labels[i]`` predicted
    as ``labels[j]`` (rows true, columns predicted: scikit-learn's layout).

    Args:
        y_true, y_pred (array[N]): labels (integers, or any sortable values with ``labels``).
        labels (array[K], optional): the labels, in the order of the rows/columns. Samples whose
            true or predicted label is not in ``labels`` are left out (scikit-learn's rule).
            Default: the sorted union of the labels in y_true and y_pred.
        num_classes (int, optional): instead of ``labels``: labels are ``0 .. K-1`` and a label
            outside that range is an error.
        sample_weight (array[N], optional): weight of each sample (default 1).
        normalize ({None, "true", "pred", "all"}): divide by row sums, column sums or the total
            (a row/column summing to 0 stays 0).

    Returns:
        array[K, K]: int64 counts (float64 when weighted or normalised). Without weights and
        normalisation, the entries of the matrix sum to the number of samples counted.

    >>> confusion_matrix([1, 1, 0], [1, 0, 0], num_classes=3)
    array([[1, 0, 0],
           [1, 1, 0],
           [0, 0, 0]])
    """
    yt = _as_labels(y_true, "y_true")
    yp = _as_labels(y_pred, "y_pred")
    _check_same_length(yt, yp, "y_true", "y_pred")
    lab, it, ip = _resolve_labels(yt, yp, labels, num_classes)
    if labels is not None and not (it >= 0).any():
        # scikit-learn's rule: a matrix none of whose rows can hold a sample is a mistake
        raise ValueError(f"confusion_matrix: none of labels {np.asarray(lab).tolist()[:10]} occurs in y_true "
                         f"(y_true holds {np.unique(yt).tolist()[:10]}); at least one label must be in y_true")
    k = lab.size
    keep = (it >= 0) & (ip >= 0)
    if sample_weight is None:
        w = None
    else:
        w = _as_numpy(sample_weight, "sample_weight").astype(np.float64)
        if w.shape != yt.shape:
            raise ValueError(f"sample_weight must have shape {yt.shape} (one per sample), "
                             f"got {w.shape}")
        _check_no_nan(w, "sample_weight")
        w = w[keep]
    flat = it[keep] * k + ip[keep]
    cm = np.bincount(flat, weights=w, minlength=k * k).reshape(k, k)
    if w is None:
        cm = cm.astype(np.int64)
    if normalize is None:
        return cm
    cm = cm.astype(np.float64)
    if normalize == "true":
        den = cm.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        den = cm.sum(axis=0, keepdims=True)
    elif normalize == "all":
        den = np.full((1, 1), cm.sum())
    else:
        raise ValueError(f'normalize must be None, "true", "pred" or "all", got {normalize!r}')
    return np.divide(cm, den, out=np.zeros_like(cm), where=den != 0)


def multilabel_counts(y_true, y_pred, labels=None, num_classes=None, sample_weight=None):
    """One-vs-rest counts per label: ``(tp, fp, fn, tn)``, each ``array[K]``, and the labels.

    From the confusion matrix C: ``tp = diag(C)``, ``fp = column sums - tp``,
    ``fn = row sums - tp``, ``tn = total - tp - fp - fn``.

    >>> tp, fp, fn, tn, labels = multilabel_counts([0, 1, 1], [0, 1, 0])
    >>> tp.tolist(), fp.tolist(), fn.tolist(), tn.tolist()
    ([1, 1], [1, 0], [0, 1], [1, 1])
    """
    yt = _as_labels(y_true, "y_true")
    yp = _as_labels(y_pred, "y_pred")
    _check_same_length(yt, yp, "y_true", "y_pred")
    lab, _, _ = _resolve_labels(yt, yp, labels, num_classes)
    cm = confusion_matrix(yt, yp, labels=lab, sample_weight=sample_weight)
    tp = np.diag(cm).copy()
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    return tp, fp, fn, tn, lab


# --------------------------------------------------------------------------------------
# Precision, recall, F-beta, specificity
# --------------------------------------------------------------------------------------
def _binary_labels(yt, yp, labels, pos_label):
    present = np.unique(np.concatenate([yt, yp])) if (yt.size or yp.size) else np.zeros(0)
    if present.size > 2:
        raise ValueError(
            f"average='binary' needs at most two distinct labels, found {present.size} "
            f"({present[:6].tolist()}...); choose average=None, 'micro', 'macro' or 'weighted'")
    if present.size == 2 and pos_label not in present.tolist():
        raise ValueError(f"pos_label={pos_label!r} is not one of the labels {present.tolist()}")
    if labels is not None:
        lab = _as_numpy(labels, "labels")
        if pos_label not in lab.tolist():
            raise ValueError(f"pos_label={pos_label!r} is not in labels={lab.tolist()}")
    return np.asarray([pos_label])


def _counts(y_true, y_pred, labels, num_classes, pos_label, average, sample_weight):
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    yt = _as_labels(y_true, "y_true")
    yp = _as_labels(y_pred, "y_pred")
    _check_same_length(yt, yp, "y_true", "y_pred")
    if average == "binary":
        if num_classes is not None and num_classes > 2:
            raise ValueError(f"average='binary' needs num_classes <= 2, got {num_classes}")
        labels = _binary_labels(yt, yp, labels, pos_label)
        if num_classes is not None:
            _resolve_labels(yt, yp, None, num_classes)  # range check only
            num_classes = None
    lab_all, it, ip = _resolve_labels(yt, yp, labels, num_classes)
    w = None if sample_weight is None else _as_numpy(sample_weight, "sample_weight").astype(float)
    if w is not None:
        if w.shape != yt.shape:
            raise ValueError(f"sample_weight must have shape {yt.shape} (one per sample), "
                             f"got {w.shape}")
        _check_no_nan(w, "sample_weight")
    k = lab_all.size
    ones = np.ones(yt.shape[0]) if w is None else w
    # One-vs-rest counts for every label in `labels`, counting *all* samples (a sample whose
    # labels are outside `labels` is still a negative for each listed label).
    true_sum = np.bincount(it[it >= 0], weights=ones[it >= 0], minlength=k)
    pred_sum = np.bincount(ip[ip >= 0], weights=ones[ip >= 0], minlength=k)
    hit = (it == ip) & (it >= 0)
    tp = np.bincount(it[hit], weights=ones[hit], minlength=k)
    total = ones.sum()
    if w is None:
        true_sum, pred_sum, tp = (np.rint(a).astype(np.int64) for a in (true_sum, pred_sum, tp))
        total = int(yt.shape[0])
    return tp, pred_sum, true_sum, total, lab_all


def _average(score, weights, average):
    if average is None or average == "binary":
        return score if average is None else float(score[0])
    mask = ~np.isnan(score)
    if score.size == 0 or not mask.any():
        return float("nan")
    if average == "weighted":
        w = np.asarray(weights, dtype=np.float64)[mask]
        if w.sum() != 0:
            return float(np.average(score[mask], weights=w))
    return float(np.mean(score[mask]))


def precision_recall_fscore_support(y_true, y_pred, *, beta=1.0, labels=None, num_classes=None,
                                    pos_label=1, average=None, zero_division="warn",
                                    sample_weight=None):
    """Precision, recall, F-beta and support per label or averaged (scikit-learn's function).

    Args:
        y_true, y_pred (array[N]): true and predicted labels.
        beta (float): recall is ``beta`` times as important as precision (F1: beta = 1).
        labels, num_classes: which labels to score (see :func:`confusion_matrix`).
        pos_label: the positive label for ``average="binary"``.
        average: None, "binary", "micro", "macro" or "weighted" (module docstring).
        zero_division: "warn" (0 with a warning), 0, 1 or nan: the value of a 0/0 ratio.

    Returns:
        (precision, recall, fbeta, support): arrays[K] with ``average=None``, else three floats
        and ``support=None``.
    """
    if not isinstance(beta, numbers.Real) or beta < 0 or np.isnan(beta):
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
    _check_zero_division(zero_division)
    tp, pred_sum, true_sum, _, _ = _counts(y_true, y_pred, labels, num_classes, pos_label,
                                           average, sample_weight)
    if average == "micro":
        tp, pred_sum, true_sum = (np.asarray([a.sum()]) for a in (tp, pred_sum, true_sum))
    precision = _divide(tp, pred_sum, zero_division, "precision")
    recall = _divide(tp, true_sum, zero_division, "recall")
    if np.isposinf(beta):
        f = recall
    elif beta == 0:
        f = precision
    else:
        b2 = float(beta) ** 2
        f = _divide((1 + b2) * tp, b2 * true_sum + pred_sum, zero_division, "F-score")
    if average is None:
        return precision, recall, f, true_sum
    avg = "binary" if average == "micro" else average
    return (_average(precision, true_sum, avg), _average(recall, true_sum, avg),
            _average(f, true_sum, avg), None)


def precision_score(y_true, y_pred, *, labels=None, num_classes=None, pos_label=1,
                    average="binary", zero_division="warn", sample_weight=None):
    """Precision TP / (TP + FP): of the samples predicted as a label, the fraction that are.

    Same arguments as :func:`precision_recall_fscore_support`; ``average`` defaults to
    "binary" as in scikit-learn.

    >>> precision_score([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, num_classes=num_classes, pos_label=pos_label,
        average=average, zero_division=zero_division, sample_weight=sample_weight)[0]


def recall_score(y_true, y_pred, *, labels=None, num_classes=None, pos_label=1,
                 average="binary", zero_division="warn", sample_weight=None):
    """Recall (sensitivity) TP / (TP + FN): of the samples of a label, the fraction found.

    >>> recall_score([0, 1, 1, 1], [1, 1, 0, 1])
    0.6666666666666666
    """
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, num_classes=num_classes, pos_label=pos_label,
        average=average, zero_division=zero_division, sample_weight=sample_weight)[1]


def fbeta_score(y_true, y_pred, *, beta, labels=None, num_classes=None, pos_label=1,
                average="binary", zero_division="warn", sample_weight=None):
    """F-beta = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)
    = (1 + b^2) P R / (b^2 P + R), the weighted harmonic mean of precision and recall.

    >>> round(fbeta_score([0, 1, 1, 1], [1, 1, 0, 1], beta=2), 6)
    0.666667
    """
    return precision_recall_fscore_support(
        y_true, y_pred, beta=beta, labels=labels, num_classes=num_classes, pos_label=pos_label,
        average=average, zero_division=zero_division, sample_weight=sample_weight)[2]


def f1_score(y_true, y_pred, *, labels=None, num_classes=None, pos_label=1, average="binary",
             zero_division="warn", sample_weight=None):
    """F1 = 2 TP / (2 TP + FP + FN) = 2 P R / (P + R), the harmonic mean of precision and recall.

    >>> f1_score([0, 1, 1, 1], [1, 1, 0, 1])
    0.6666666666666666
    """
    return fbeta_score(y_true, y_pred, beta=1.0, labels=labels, num_classes=num_classes,
                       pos_label=pos_label, average=average, zero_division=zero_division,
                       sample_weight=sample_weight)


def specificity_score(y_true, y_pred, *, labels=None, num_classes=None, pos_label=1,
                      average="binary", zero_division="warn", sample_weight=None):
    """Specificity (true negative rate) TN / (TN + FP), one-vs-rest per label.

    scikit-learn has no such function; the averages follow the same rules as the others:
    "micro" is sum(TN) / sum(TN + FP) over the labels, "weighted" weights by support
    (the number of true samples of each label).

    >>> specificity_score([0, 1, 1, 0, 0], [1, 1, 0, 0, 0])   # negatives are the 0s
    0.6666666666666666
    """
    _check_zero_division(zero_division)
    tp, pred_sum, true_sum, total, _ = _counts(y_true, y_pred, labels, num_classes, pos_label,
                                               average, sample_weight)
    fp = pred_sum - tp
    tn = total - true_sum - fp            # total - tp - fp - fn
    if average == "micro":
        tn, fp = np.asarray([tn.sum()]), np.asarray([fp.sum()])
    spec = _divide(tn, tn + fp, zero_division, "specificity")
    if average is None:
        return spec
    return _average(spec, true_sum, "binary" if average == "micro" else average)


def accuracy_score(y_true, y_pred, *, normalize=True, sample_weight=None):
    """Fraction (or, with ``normalize=False``, number) of samples with y_pred == y_true.

    An empty input raises ValueError when normalised (the mean of nothing is undefined).

    >>> accuracy_score([0, 1, 2, 3], [0, 2, 1, 3])
    0.5
    """
    yt = _as_labels(y_true, "y_true")
    yp = _as_labels(y_pred, "y_pred")
    _check_same_length(yt, yp, "y_true", "y_pred")
    hit = (yt == yp).astype(np.float64)
    if sample_weight is not None:
        w = _as_numpy(sample_weight, "sample_weight").astype(np.float64)
        if w.shape != yt.shape:
            raise ValueError(f"sample_weight must have shape {yt.shape} (one per sample), "
                             f"got {w.shape}")
        _check_no_nan(w, "sample_weight")
    else:
        w = np.ones_like(hit)
    if not normalize:
        s = float(np.dot(hit, w))
        return int(s) if sample_weight is None else s
    if yt.size == 0:
        raise ValueError("accuracy of an empty input is undefined: y_true has shape (0,)")
    return float(np.dot(hit, w) / w.sum())


# --------------------------------------------------------------------------------------
# Precision-recall curve and average precision (binary scores)
# --------------------------------------------------------------------------------------
def _binary_scores(y_true, y_score, pos_label):
    yt = _as_labels(y_true, "y_true")
    ys = _as_numpy(y_score, "y_score")
    if ys.ndim != 1:
        raise ValueError(f"y_score must be 1-D (one score per sample), got shape {ys.shape}")
    if ys.dtype.kind not in "biuf":
        raise ValueError(f"y_score must be numeric, got dtype {ys.dtype}")
    _check_same_length(yt, ys, "y_true", "y_score")
    ys = ys.astype(np.float64)
    if np.isnan(ys).any():
        raise ValueError(f"y_score contains NaN (at index {int(np.flatnonzero(np.isnan(ys))[0])}); "
                         f"shape {ys.shape}")
    classes = np.unique(yt)
    if pos_label is None:
        if classes.size > 2 or not set(classes.tolist()) <= {0, 1, -1}:
            raise ValueError(
                f"y_true has labels {classes[:6].tolist()}: give pos_label (only labels in "
                "{0, 1} or {-1, 1} default to pos_label=1)")
        if classes.size == 2 and set(classes.tolist()) == {0, -1}:
            raise ValueError("y_true has labels [-1, 0]: give pos_label")
        pos_label = 1
    elif classes.size > 2:
        raise ValueError(f"y_true must be binary, found {classes.size} labels "
                         f"{classes[:6].tolist()}")
    return (yt == pos_label), ys


def _binary_clf_curve(y_true, y_score, pos_label=None):
    """Cumulative (fps, tps, thresholds) at each distinct score, thresholds decreasing.

    Sort scores in decreasing order; at the last position of each run of equal scores
    (threshold = that score, "predict positive when score >= threshold") count
    tps = positives so far, fps = (position + 1) - tps.
    """
    pos, ys = _binary_scores(y_true, y_score, pos_label)
    order = np.argsort(-ys, kind="stable")
    ys = ys[order]
    pos = pos[order]
    # last index of each run of equal scores
    distinct = np.flatnonzero(np.diff(ys))
    ends = np.r_[distinct, ys.size - 1] if ys.size else np.zeros(0, dtype=np.int64)
    tps = np.cumsum(pos)[ends] if ys.size else np.zeros(0, dtype=np.int64)
    fps = 1 + ends - tps
    return fps, tps, ys[ends]


def precision_recall_curve(y_true, y_score, *, pos_label=None, drop_intermediate=False):
    """Precision and recall at every distinct score threshold (scikit-learn's semantics).

    A sample is predicted positive when ``score >= threshold``. With the distinct scores
    ``s_1 < s_2 < ... < s_m`` as thresholds (increasing)::

        precision[i] = TP(s_i) / (TP(s_i) + FP(s_i))   (0 where nothing is predicted: cannot happen
                                                         at a score that occurs)
        recall[i]    = TP(s_i) / P                      (1 everywhere when there are no positives,
                                                         with a warning)

    then a last point ``precision = 1, recall = 0`` with no threshold, so ``precision`` and
    ``recall`` have m + 1 entries and ``thresholds`` m. Recall is non-increasing along the arrays.

    Args:
        y_true (array[N]): binary labels ({0, 1}, {-1, 1}, or any two with ``pos_label``).
        y_score (array[N]): scores, larger = more positive. NaN is rejected.
        pos_label: the positive class (default 1 for {0, 1} / {-1, 1} labels).
        drop_intermediate (bool): drop thresholds where neither the TP count changes on both sides
            (points on a flat precision segment), as scikit-learn >= 1.3 does.

    Returns:
        (precision array[m+1], recall array[m+1], thresholds array[m])

    >>> p, r, t = precision_recall_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> p.tolist(), r.tolist(), t.tolist()
    ([0.5, 0.6666666666666666, 0.5, 1.0, 1.0], [1.0, 1.0, 0.5, 0.5, 0.0], [0.1, 0.35, 0.4, 0.8])
    """
    fps, tps, thresholds = _binary_clf_curve(y_true, y_score, pos_label)
    if drop_intermediate and tps.size > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(tps[:-1]), np.diff(tps[1:])),
                                    True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    predicted = tps + fps
    precision = np.zeros(tps.shape, dtype=np.float64)
    np.divide(tps, predicted, out=precision, where=predicted != 0)
    if tps.size == 0 or tps[-1] == 0:
        warnings.warn("no positive samples in y_true: recall is set to 1 for every threshold",
                      UserWarning, stacklevel=2)
        recall = np.ones(tps.shape, dtype=np.float64)
    else:
        recall = tps / tps[-1]
    # reverse: thresholds increasing, recall decreasing; close with (recall 0, precision 1)
    return (np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1])


def average_precision_score(y_true, y_score, *, pos_label=None):
    """Average precision, the step-wise (no interpolation) area under the PR curve:
    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the thresholds (scikit-learn's definition; compare
    the VOC interpolated forms in :mod:`tinyvision.metrics.voc`). With no positive samples
    recall is 1 at every threshold, so the only step is the final drop to recall 0, taken at
    the precision of the highest threshold, 0: AP = 0.0 (with a warning).

    >>> average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.8333333333333333
    """
    precision, recall, _ = precision_recall_curve(y_true, y_score, pos_label=pos_label)
    # recall is non-increasing along the arrays, so -diff(recall) >= 0 are the step widths
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))
