"""The learning rate at every optimizer step: linear warm-up, then cosine, constant or step decay.

The rate is a pure function of the global step (counted from 0, one per optimizer step), so a
resumed run needs nothing but the step number to continue the schedule exactly:

    warm-up (s < W):     lr(s) = base · (f + (1 - f) · s / W)         f = warmup_factor
    then, with u = s - W and T = total_steps - W (steps after warm-up):
      "constant":        lr(s) = base
      "cosine":          lr(s) = base · (1 + cos(π u / T)) / 2
      "step":            lr(s) = base · gamma^(number of milestones m with s >= m · total_steps)

Warm-up is PyTorch's ``LinearLR(start_factor=f, total_iters=W)`` (torchvision's detection recipe
uses it per step with f = 0.001), the cosine part ``CosineAnnealingLR(T_max=T)`` in closed form;
stepping them per optimizer step inside ``SequentialLR`` gives these numbers (a test checks it).
The "step" milestones are fractions of training (``config.extra["lr_milestones"]``, default
(2/3, 8/9), torchvision's 16 and 22 of 26 epochs) and ``config.extra["lr_gamma"]`` (default 0.1).
"""
from __future__ import annotations

import math

__all__ = ["lr_factor", "SCHEDULES"]

SCHEDULES = ("cosine", "constant", "step")


def lr_factor(step: int, total_steps: int, config) -> float:
    """Multiplier of ``config.lr`` at optimizer step ``step`` (0-based) of ``total_steps``."""
    if config.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}")
    warmup = int(config.warmup_steps)
    if warmup < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup}")
    if step < warmup:
        f = float(config.warmup_factor)
        return f + (1.0 - f) * step / warmup
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "cosine":
        span = max(total_steps - warmup, 1)
        u = min(step - warmup, span)
        return 0.5 * (1.0 + math.cos(math.pi * u / span))
    milestones = config.extra.get("lr_milestones", (2 / 3, 8 / 9))
    gamma = float(config.extra.get("lr_gamma", 0.1))
    passed = sum(1 for m in milestones if step >= round(m * total_steps))
    return gamma ** passed
