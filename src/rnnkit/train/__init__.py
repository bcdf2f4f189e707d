"""Training: typed configs, the one Trainer (on Lightning Fabric), safe checkpoints.

See ``docs/training.md`` for the design.  Typical use::

    from rnnkit.train import load_recipe, run_training
    summary = run_training(
        load_recipe("configs/shakespeare_char.yaml"), recipe_name="shakespeare_char"
    )
"""

from rnnkit.train.checkpoint import CheckpointError
from rnnkit.train.config import (
    ConfigError,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
    TrainerConfig,
    load_recipe,
)
from rnnkit.train.run import run_training
from rnnkit.train.task import StepOutput, Task
from rnnkit.train.trainer import FitResult, Trainer, TrainingError, make_fabric

__all__ = [
    "CheckpointError",
    "ConfigError",
    "OptimConfig",
    "RunConfig",
    "ScheduleConfig",
    "TrainerConfig",
    "load_recipe",
    "run_training",
    "StepOutput",
    "Task",
    "FitResult",
    "Trainer",
    "TrainingError",
    "make_fabric",
]
