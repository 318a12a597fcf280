"""The engine's per-step learning rate against PyTorch's schedulers stepped once per step."""
import pytest

from tinyvision.engine import lr_factor
from tinyvision.tasks import TrainConfig

torch = pytest.importorskip("torch")


def torch_rates(make, total):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make(opt)
    rates = []
    for _ in range(total):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


@pytest.mark.parametrize("warmup", [0, 1, 7])
def test_warmup_then_cosine_is_linearlr_then_cosineannealing(warmup):
    total = 30
    config = TrainConfig(lr=0.1, warmup_steps=warmup, warmup_factor=0.001, schedule="cosine")
    lr = torch.optim.lr_scheduler

    def make(opt):
        cosine = lr.CosineAnnealingLR(opt, T_max=total - warmup)
        if warmup == 0:
            return cosine
        linear = lr.LinearLR(opt, start_factor=0.001, total_iters=warmup)
        return lr.SequentialLR(opt, [linear, cosine], milestones=[warmup])

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's deprecation chatter
        expected = torch_rates(make, total)
    ours = [0.1 * lr_factor(s, total, config) for s in range(total)]
    assert ours == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_warmup_then_constant_and_step():
    total = 9
    config = TrainConfig(lr=0.1, warmup_steps=3, warmup_factor=0.25, schedule="constant")
    expected = torch_rates(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=3), total)
    assert [0.1 * lr_factor(s, total, config) for s in range(total)] == pytest.approx(expected, rel=1e-12)
    config = TrainConfig(lr=0.1, schedule="step", extra={"lr_milestones": [1 / 3, 2 / 3], "lr_gamma": 0.5})
    expected = torch_rates(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [3, 6], gamma=0.5), total)
    assert [0.1 * lr_factor(s, total, config) for s in range(total)] == pytest.approx(expected, rel=1e-12)


def test_bad_schedule_named():
    with pytest.raises(ValueError, match="schedule must be one of cosine, constant, step"):
        lr_factor(0, 10, TrainConfig(schedule="poly"))
