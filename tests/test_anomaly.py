"""tv.autograd.detect_anomaly(): the first Function whose backward turns finite gradients
non-finite raises, naming that Function, the shapes, and the user's line that created it."""
import numpy as np
import pytest

import tinyvision as tv
import tinyvision.functional as F
from tinyvision import nn
from tinyvision.autograd import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the planted 0/0 and log(0)


def test_planted_nan_is_found_at_the_right_op():
    lin = nn.Linear(3, 2, dtype=np.float64)
    with tv.no_grad():      # fixed weights: the first unit is negative for both rows, so relu clips it
        lin.weight.data[...] = [[-1.0, -1.0, -1.0], [0.5, 0.25, 0.1]]
        lin.bias.data[...] = [0.0, 0.1]
    x = tv.tensor(np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]))
    with detect_anomaly():
        h = lin(x)
        h = F.relu(h) + 1.0
        r = F.log(h - 1.0)      # log(0) where relu clipped: its backward divides by 0 -> inf
        loss = F.sum(r * 0.0)   # gradient 0 * (1 / 0) = NaN appears inside Log's backward
        with pytest.raises(AnomalyError) as info:
            loss.backward()
    msg = str(info.value)
    assert msg.startswith("Log.backward returned a gradient with")
    assert "NaN" in msg and "of shape (2, 2)" in msg
    assert "test_anomaly.py" in msg and "r = F.log(h - 1.0)" in msg     # where the op was created
    assert not is_anomaly_enabled()


def test_same_graph_without_anomaly_mode_gives_nan_silently_as_torch():
    x = tv.tensor(np.array([0.0, 1.0]), requires_grad=True)
    y = F.sum(F.sqrt(x) * 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        y.backward()
    assert np.isnan(x.grad.numpy()[0])


def test_non_finite_gradient_arriving_is_not_blamed_on_the_next_op():
    x = tv.tensor(np.array([0.0, 4.0]), requires_grad=True)
    with detect_anomaly():
        y = x * 3.0             # created first, its backward gets an inf and passes it on
        z = F.sqrt(y)           # d sqrt / dy = inf at 0: the culprit
        with pytest.raises(AnomalyError, match=r"^Sqrt\.backward returned a gradient with 1 inf"):
            with np.errstate(divide="ignore"):
                F.sum(z).backward()


def test_op_created_outside_anomaly_mode_says_so():
    x = tv.tensor(np.array([0.0]), requires_grad=True)
    z = F.sum(F.sqrt(x))
    with set_detect_anomaly(True), np.errstate(divide="ignore"):
        with pytest.raises(AnomalyError, match="created outside detect_anomaly"):
            z.backward()


def test_finite_backward_is_unchanged_in_anomaly_mode():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 3))
    x1 = tv.tensor(a, requires_grad=True)
    x2 = tv.tensor(a, requires_grad=True)
    F.sum(F.tanh(x1) * x1).backward()
    with detect_anomaly():
        F.sum(F.tanh(x2) * x2).backward()
    np.testing.assert_array_equal(x1.grad.numpy(), x2.grad.numpy())
