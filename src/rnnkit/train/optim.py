"""Optimizers and learning-rate schedules.

The schedule is a multiplier on the base rate ``lr0`` (``optim.lr``), recomputed before
every optimizer step::

    lr = lr0 * warmup(s) * main

    warmup(s) = min(1, (s + 1) / W)                       s: optimizer steps so far, W: warmup_steps
    main      = 1                                          constant
              = gamma ** (1 + (e - e0) // k) if e >= e0    step (e: 0-based epoch, k: step_size,
                1 otherwise                                      e0: decay_start, default k)
              = m + (1 - m) (1 + cos(pi p)) / 2            cosine (p in [0, 1]: training progress,
                                                                m = min_lr / lr0)
              = gamma ** n                                 plateau (n: reductions so far)

``step`` with ``decay_start=4, step_size=1, gamma=0.5`` is Zaremba et al. (2014): lr halved
each epoch after the 4th.  Warm-up composes with every main schedule.  The whole state is
plain JSON (no pickled closures), which keeps checkpoints safe to load.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from rnnkit.train.config import OptimConfig, ScheduleConfig, check_schedule

__all__ = ["build_optimizer", "LRSchedule"]


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: OptimConfig
) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.name`` with its hyperparameters."""
    params = list(params)
    if cfg.lr <= 0:
        raise ValueError(f"optim.lr={cfg.lr}; expected a positive learning rate")
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                 weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps,
                                   momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.name={cfg.name!r}; expected sgd, adam, adamw or rmsprop")


class LRSchedule:
    """Warm-up times a main schedule (see the module docstring); JSON state.

    Args:
        cfg: :class:`ScheduleConfig`.
        base_lr: ``lr0``.
        mode: "min" or "max", the direction of the monitored metric (plateau).
    """

    def __init__(self, cfg: ScheduleConfig, base_lr: float, mode: str = "min"):
        if cfg.warmup_steps < 0 or cfg.step_size < 1 or cfg.gamma <= 0:
            raise ValueError(
                f"schedule: warmup_steps={cfg.warmup_steps} (>= 0), "
                f"step_size={cfg.step_size} (>= 1), "
                f"gamma={cfg.gamma} (> 0) out of range"
            )
        check_schedule(cfg, base_lr)  # the ranges a recipe is held to (ConfigError)
        self.cfg = cfg
        self.base_lr = base_lr
        self.mode = mode
        self.plateau_best: float | None = None
        self.plateau_bad = 0
        self.plateau_reductions = 0

    def main_factor(self, epoch: int, progress: float) -> float:
        c = self.cfg
        if c.name == "constant":
            return 1.0
        if c.name == "step":
            start = c.step_size if c.decay_start is None else c.decay_start
            return 1.0 if epoch < start else c.gamma ** (1 + (epoch - start) // c.step_size)
        if c.name == "cosine":
            m = c.min_lr / self.base_lr
            p = min(max(progress, 0.0), 1.0)
            return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * p))
        if c.name == "plateau":
            return c.gamma ** self.plateau_reductions
        raise ValueError(f"schedule.name={c.name!r}; expected constant, step, cosine or plateau")

    def lr(self, step: int, epoch: int, progress: float) -> float:
        """Learning rate for optimizer step ``step`` (0-based) in epoch ``epoch``."""
        w = self.cfg.warmup_steps
        warm = min(1.0, (step + 1) / w) if w > 0 else 1.0
        return self.base_lr * warm * self.main_factor(epoch, progress)

    def apply(
        self, optimizer: torch.optim.Optimizer, step: int, epoch: int, progress: float
    ) -> float:
        lr = self.lr(step, epoch, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def on_validation(self, value: float) -> None:
        """Feed a validation metric (plateau only): reduce after ``patience`` bad evaluations."""
        if self.cfg.name != "plateau" or not math.isfinite(value):
            return
        best = self.plateau_best
        thr = self.cfg.threshold
        better = best is None or (
            value < best * (1 - thr) if self.mode == "min" else value > best * (1 + thr)
        )
        if better:
            self.plateau_best, self.plateau_bad = value, 0
            return
        self.plateau_bad += 1
        if self.plateau_bad > self.cfg.patience:
            self.plateau_reductions += 1
            self.plateau_bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_best": self.plateau_best, "plateau_bad": self.plateau_bad,
                "plateau_reductions": self.plateau_reductions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_best = state.get("plateau_best")
        self.plateau_bad = int(state.get("plateau_bad", 0))
        self.plateau_reductions = int(state.get("plateau_reductions", 0))
