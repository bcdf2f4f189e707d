"""The typed configuration's sections and its one error.

:class:`RunConfig` is a whole run: the task name plus one dataclass per section (the task
owns ``data`` and ``model``; :class:`OptimConfig`, :class:`ScheduleConfig` and
:class:`TrainerConfig` are the trainer's).  Reading recipes onto them is
:mod:`rnnkit.train.config`'s; their ranges are :mod:`rnnkit.train.config_checks`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ConfigError",
    "OptimConfig",
    "ScheduleConfig",
    "TrainerConfig",
    "RunConfig",
]


class ConfigError(ValueError):
    """A recipe or override that does not fit the typed configuration (one-line message)."""


@dataclass
class OptimConfig:
    """Optimizer: ``sgd`` (with optional momentum/Nesterov), ``adam``, ``adamw`` or ``rmsprop``."""

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    alpha: float = 0.99  # RMSprop smoothing constant


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, a multiplier on ``optim.lr``.

    ``lr(step, epoch) = lr0 * warmup(step) * main(epoch or step)`` where ``warmup`` rises
    linearly from ``1/warmup_steps`` to 1 over the first ``warmup_steps`` optimizer steps and
    ``main`` is one of: ``constant``; ``step`` (``gamma ** (1 + (e - decay_start) // step_size)``
    from epoch ``decay_start`` on, default ``decay_start = step_size``: torch's StepLR; with
    ``decay_start=4, step_size=1, gamma=0.5`` it is Zaremba et al.'s halving after epoch 4);
    ``cosine`` (from 1 to ``min_lr/lr`` over all training steps); ``plateau`` (times
    ``gamma`` when the monitored validation metric has not improved for ``patience``
    evaluations).

    Ranges (checked when the recipe is read, :func:`check_schedule`): ``warmup_steps >= 0``,
    ``step_size >= 1``, ``gamma`` finite and > 0, at most 1 for ``step`` and ``plateau`` (a
    decay); ``decay_start >= 0`` (step); ``0 <= min_lr <= optim.lr`` (cosine);
    ``patience >= 0`` and finite ``threshold >= 0`` (plateau).
    """

    name: Literal["constant", "step", "cosine", "plateau"] = "constant"
    warmup_steps: int = 0
    gamma: float = 0.1
    step_size: int = 1
    decay_start: int | None = None
    min_lr: float = 0.0
    patience: int = 2
    threshold: float = 1e-4


@dataclass
class TrainerConfig:
    """The loop: stopping, checkpoints, clipping, devices, precision, logging.

    ``max_time_minutes`` is measured on ``budget_clock``: "wall" (elapsed time) or
    "process" (CPU time of the training process, the fair measure on shared cores).

    ``max_model_memory_gb`` caps the model's parameters plus optimizer state, checked before
    anything is allocated (:mod:`rnnkit.train.sizing`); None: half of the machine's memory
    (or ``RNNKIT_MAX_MODEL_MEMORY_GB``); ``inf`` turns the check off.

    ``checkpoints``: "disk" writes ``best/``, ``last/`` and ``summary.json`` into the run
    directory; "memory" keeps the best weights in memory (``Trainer.load_best`` restores
    them) and writes no checkpoint, for throwaway fits that are never resumed (an anomaly
    detector's, a demo's). ``validate_at_start`` evaluates the untrained model before the
    first step, so it is the first candidate for the best weights.
    """

    max_epochs: int = 10
    max_steps: int | None = None
    max_time_minutes: float | None = None
    budget_clock: Literal["wall", "process"] = "wall"
    val_every_steps: int | None = None
    checkpoint_every_steps: int | None = 200
    grad_clip: float | None = 5.0
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int | None = None
    min_delta: float = 0.0
    seed: int = 1234
    deterministic: bool = False
    threads: int | None = None
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true"] = "32-true"
    log_every_steps: int = 50
    progress: bool = True
    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])
    plot: bool = True
    out_dir: str = "runs"
    name: str | None = None
    max_model_memory_gb: float | None = None
    checkpoints: Literal["disk", "memory"] = "disk"
    validate_at_start: bool = False


@dataclass
class RunConfig:
    """A whole run: the task name plus one typed section per component."""

    task: str
    data: Any
    model: Any
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def _clean(key: Any) -> str:
    """A key as one printable line (a key from a file may hold newlines or control characters)."""
    return repr(str(key))[1:-1]

