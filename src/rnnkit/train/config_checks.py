"""Ranges the types cannot say: the optimizer, schedule and trainer sections of a recipe.

Each check returns its section unchanged or raises a one-line :class:`ConfigError` naming
the key, what was expected and what was given.
"""

from __future__ import annotations

import math

from rnnkit.train.config_types import ConfigError, OptimConfig, ScheduleConfig, TrainerConfig

__all__ = ["check_schedule"]


def _check_trainer(t: TrainerConfig) -> TrainerConfig:
    """Ranges the types cannot say: a negative grad_clip would reverse every gradient
    (torch scales by max_norm / norm), 0 would zero them; a negative patience never stops."""
    def bad(key: str, want: str) -> ConfigError:
        return ConfigError(f"config key 'trainer.{key}': expected {want}, got {getattr(t, key)}")

    if t.grad_clip is not None and not (math.isfinite(t.grad_clip) and t.grad_clip > 0):
        raise bad("grad_clip", "a positive norm or null (no clipping)")
    if t.max_time_minutes is not None and not t.max_time_minutes > 0:
        raise bad("max_time_minutes", "a positive number of minutes or null")
    if t.max_epochs < 1:
        raise bad("max_epochs", "a positive integer")
    for key in ("max_steps", "val_every_steps", "checkpoint_every_steps", "threads"):
        if getattr(t, key) is not None and getattr(t, key) < 1:
            raise bad(key, "a positive integer or null")
    if t.patience is not None and t.patience < 0:
        raise bad("patience", "an integer >= 0 or null")
    if not (math.isfinite(t.min_delta) and t.min_delta >= 0):
        raise bad("min_delta", "a number >= 0 (finite)")
    if t.log_every_steps < 1:
        raise bad("log_every_steps", "a positive integer")
    if not 0 <= t.seed < 2**63:
        raise bad("seed", "an integer in [0, 2**63)")
    return t


def _check_optim(o: OptimConfig) -> OptimConfig:
    """Ranges of the optimizer's numbers (a nan rate, or eps=0, would only show up later as a
    "diverged" run; torch's own messages name no config key)."""
    def bad(key: str, want: str) -> ConfigError:
        return ConfigError(f"config key 'optim.{key}': expected {want}, got {getattr(o, key)}")

    if not (math.isfinite(o.lr) and o.lr > 0):
        raise bad("lr", "a positive, finite learning rate")
    if o.name != "sgd" and not (math.isfinite(o.eps) and o.eps > 0):
        raise bad("eps", f"a positive, finite number ({o.name} divides by sqrt(v) + eps)")
    if not (math.isfinite(o.weight_decay) and o.weight_decay >= 0):
        raise bad("weight_decay", "a number >= 0 (finite)")
    if o.name in ("sgd", "rmsprop") and not (math.isfinite(o.momentum) and o.momentum >= 0):
        raise bad("momentum", "a number >= 0 (finite)")
    if o.name in ("adam", "adamw") and not all(0 <= b < 1 for b in o.betas):
        raise bad("betas", "two numbers in [0, 1)")
    return o


def check_schedule(s: ScheduleConfig, lr: float) -> ScheduleConfig:
    """Ranges of the schedule's numbers, for a base rate ``lr`` (``optim.lr``).

    A negative ``min_lr`` turns cosine into gradient ascent, one above ``lr`` raises the rate;
    a ``gamma`` above 1 grows it; nan or a negative count would fail (or never act) mid-run.
    """
    def bad(key: str, want: str) -> ConfigError:
        return ConfigError(
            f"config key 'schedule.{key}': expected {want}, got {getattr(s, key)}"
        )

    if s.warmup_steps < 0:
        raise bad("warmup_steps", "an integer >= 0")
    if s.step_size < 1:
        raise bad("step_size", "a positive integer")
    decays = s.name in ("step", "plateau")
    if not (math.isfinite(s.gamma) and s.gamma > 0 and (s.gamma <= 1 or not decays)):
        raise bad("gamma", f"a decay factor in (0, 1]{f' for {s.name}' if decays else ''}")
    if s.name == "step" and s.decay_start is not None and s.decay_start < 0:
        raise bad("decay_start", "an epoch >= 0 or null (= step_size)")
    if s.name == "cosine" and not (math.isfinite(s.min_lr) and 0 <= s.min_lr <= lr):
        raise bad("min_lr", f"a rate in [0, optim.lr = {lr:g}] (cosine falls from optim.lr "
                            "to min_lr)")
    if s.name == "plateau":
        if s.patience < 0:
            raise bad("patience", "an integer >= 0 (evaluations without improvement)")
        if not (math.isfinite(s.threshold) and s.threshold >= 0):
            raise bad("threshold", "a number >= 0 (finite)")
    return s
