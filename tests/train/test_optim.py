"""Optimizers and schedules against torch's own implementations and hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.train.config import OptimConfig, ScheduleConfig
from rnnkit.train.optim import LRSchedule, build_optimizer


@pytest.mark.parametrize("name, cls, extra", [
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    ("adam", torch.optim.Adam, {}),
    ("adamw", torch.optim.AdamW, {"weight_decay": 0.1}),
    ("rmsprop", torch.optim.RMSprop, {"alpha": 0.9, "momentum": 0.5}),
])
def test_optimizers_match_torch(name, cls, extra):
    torch.manual_seed(0)
    w0 = torch.randn(5, 3)
    a, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    ours = build_optimizer([a], OptimConfig(name=name, lr=0.01, **extra))
    kw = {k: v for k, v in extra.items()}
    ref = cls([b], lr=0.01, **kw)
    assert type(ours) is cls
    for _ in range(3):
        for p, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            (p ** 3).sum().backward()
            opt.step()
    assert torch.equal(a, b)


def test_zaremba_step_schedule():
    s = LRSchedule(ScheduleConfig(name="step", decay_start=4, step_size=1, gamma=0.5), 1.0)
    # epochs 1-4 at lr 1, then halved each epoch (13 epochs)
    got = [s.lr(0, e, 0.0) for e in range(13)]
    assert got == [1, 1, 1, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125, 2**-6, 2**-7, 2**-8, 2**-9]


def test_step_default_equals_torch_steplr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.3)
    ref = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1)
    s = LRSchedule(ScheduleConfig(name="step", step_size=3, gamma=0.1), 0.3)
    for e in range(10):
        assert s.lr(0, e, 0.0) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        ref.step()


def test_cosine_equals_torch_and_warmup():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    n = 20
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n, eta_min=0.01)
    s = LRSchedule(ScheduleConfig(name="cosine", min_lr=0.01), 0.1)
    for k in range(n + 1):
        assert s.lr(k, 0, k / n) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        ref.step()
    w = LRSchedule(ScheduleConfig(name="cosine", warmup_steps=4), 1.0)
    assert [w.lr(k, 0, 0.0) for k in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert w.lr(1, 0, 0.5) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_plateau_and_state_roundtrip():
    s = LRSchedule(ScheduleConfig(name="plateau", gamma=0.5, patience=1), 1.0, mode="min")
    seq = [3.0, 2.0, 2.5, 2.4, 2.3, 1.0, 1.5, 1.6]
    lrs = []
    for v in seq:
        s.on_validation(v)
        lrs.append(s.lr(100, 0, 0.0))
    # bad evals after 2.0: 2.5 (1), 2.4 (2 > patience -> halve), 2.3 (1); 1.0 best; 1.5 (1), 1.6 (2 -> halve)
    assert lrs == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]
    t = LRSchedule(ScheduleConfig(name="plateau", gamma=0.5, patience=1), 1.0)
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == s.state_dict() and t.lr(0, 0, 0) == 0.25
    m = LRSchedule(ScheduleConfig(name="plateau", gamma=0.1, patience=0), 1.0, mode="max")
    for v in (0.5, 0.6, 0.6):
        m.on_validation(v)
    assert m.lr(0, 0, 0) == pytest.approx(0.1)


def test_bad_values():
    with pytest.raises(ValueError, match="optim.lr=0"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimConfig(lr=0.0))
    with pytest.raises(ValueError, match="step_size=0"):
        LRSchedule(ScheduleConfig(step_size=0), 1.0)
