"""The adding problem as a training task: the model, the Task, and one training run.

Used by ``rnnkit demo adding`` (:mod:`rnnkit.demos.adding`), ``rnnkit explain adding``
(:mod:`rnnkit.diagnostics.adding`) and the long-memory experiments. :class:`AddingTask` is the
problem as a :class:`~rnnkit.train.Task` (a fresh batch per step, the test MSE as
``val_loss``) and :func:`throwaway_trainer` runs it in one process with no logs, plots,
progress bar or checkpoints (the best weights stay in memory). Per step::

    x, y  = adding_problem(B, T)                 fresh batch, seeded generator
    loss  = mean((model(x) - y)^2)
    Trainer: backward, global-norm clip, Adam step; test MSE every ``eval_every`` steps
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from rnnkit.data.synthetic import adding_problem
from rnnkit.layers import build_layer
from rnnkit.train import OptimConfig, RunConfig, StepOutput, Trainer, TrainerConfig, make_fabric

__all__ = ["AddingModel", "AddingTask", "throwaway_trainer", "train_adding", "SOLVED_MSE",
           "TEST_SEED"]

SOLVED_MSE = 0.01
TEST_SEED = 12345


class AddingModel(nn.Module):
    """recurrent layer -> linear read-out of the last step."""

    def __init__(self, cell: str, hidden: int, **layer_kwargs):
        super().__init__()
        self.rnn = build_layer(cell, 2, hidden, **layer_kwargs)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):  # x (T, B, 2) -> (B,)
        out, _ = self.rnn(x)
        return self.head(out[-1]).squeeze(-1)


class AddingTask:
    """The adding problem as a :class:`rnnkit.train.Task`: one epoch of ``steps`` fresh batches.

    Batches are drawn from ``generator`` in order, so a run is fixed by its seeds (it cannot
    resume mid-epoch: a throwaway run keeps no checkpoint to resume from). ``evaluate``
    gives the MSE on ``test_size`` sequences drawn with ``test_seed`` as ``loss`` and records
    ``history`` (``[[step, mse]]``) and ``solved_at`` (first step with MSE < 0.01); ``on_eval``
    (``(step, mse)``) is called after each evaluation.
    """

    name = "adding"
    item_name = "sequences"
    eval_splits = ("valid",)

    def __init__(self, model: nn.Module, T: int, steps: int, *, batch: int = 50,
                 generator: torch.Generator, test_size: int = 1000, test_seed: int = TEST_SEED,
                 on_eval: Callable[[int, float], None] | None = None):
        self.model = model
        self.T, self.steps, self.batch, self.generator = T, steps, batch, generator
        self.x_test, self.y_test = adding_problem(
            test_size, T, generator=torch.Generator().manual_seed(test_seed))
        self.on_eval = on_eval
        self.step = 0  # training steps taken
        self.history: list[list[float]] = []
        self.solved_at: int | None = None

    def setup(self, rank: int, world_size: int) -> None:
        if world_size != 1:
            raise ValueError("the adding problem trains in one process")

    def steps_per_epoch(self, epoch: int) -> int:
        return self.steps

    def train_batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        for _ in range(start_step, self.steps):
            yield adding_problem(self.batch, self.T, generator=self.generator)

    def initial_carry(self) -> Any:
        return None

    def training_step(self, model: nn.Module, batch: Any, carry: Any) -> StepOutput:
        x, y = batch  # (T, B, 2), (B,)
        self.step += 1
        return StepOutput(F.mse_loss(model(x), y), None, x.shape[1])

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        mse = F.mse_loss(model(self.x_test), self.y_test).item()
        self.history.append([self.step, mse])
        if mse < SOLVED_MSE and self.solved_at is None:
            self.solved_at = self.step
        if self.on_eval is not None:
            self.on_eval(self.step, mse)
        return {"loss": mse}

    def write_assets(self, directory: Path) -> None:
        pass


@contextmanager
def throwaway_trainer(task: Any, optim: OptimConfig, *, callbacks: Sequence[Any] = (),
                      **trainer: Any) -> Iterator[Trainer]:
    """A :class:`~rnnkit.train.Trainer` for ``task`` in a temporary run directory.

    ``trainer`` overrides :class:`~rnnkit.train.TrainerConfig` fields; the defaults here are
    one CPU process, no loggers, plot or progress bar, best weights kept in memory and no
    checkpoint written (``checkpoints="memory"``), and a silent console. ``callbacks`` go to
    Lightning Fabric (e.g. ``on_after_optimizer_step``). The run directory is deleted on exit.
    """
    tc = TrainerConfig(**{"accelerator": "cpu", "checkpoint_every_steps": None, "loggers": [],
                          "plot": False, "progress": False, "log_every_steps": 10**9,
                          "checkpoints": "memory", **trainer})
    cfg = RunConfig(task=task.name, data=None, model=None, optim=optim, trainer=tc)
    fabric = make_fabric(tc, callbacks)
    fabric.launch()
    with tempfile.TemporaryDirectory(prefix=f"rnnkit-{task.name}-") as tmp:
        yield Trainer(cfg, task, fabric, Path(tmp), console=Console(quiet=True))


def train_adding(cell: str, T: int, steps: int, hidden: int = 64, batch: int = 50,
                 lr: float = 1e-2, clip: float = 1.0, seed: int = 0, eval_every: int = 100,
                 test_size: int = 1000, on_eval: Callable[[int, float], None] | None = None,
                 keep: dict | None = None, **layer_kwargs) -> dict:
    """Train on fresh batches; return test MSE and the step at which it first fell below 0.01.

    ``on_eval(step, mse)`` is called after each evaluation; ``keep["model"]`` receives the
    trained model when ``keep`` is given.
    """
    torch.manual_seed(seed)
    model = AddingModel(cell, hidden, **layer_kwargs)
    task = AddingTask(model, T, steps, batch=batch, test_size=test_size,
                      generator=torch.Generator().manual_seed(seed + 1), on_eval=on_eval)
    if keep is not None:
        keep["model"] = model
    t0 = time.perf_counter()
    with throwaway_trainer(task, OptimConfig(name="adam", lr=lr), max_epochs=1,
                           val_every_steps=eval_every, grad_clip=clip) as trainer:
        trainer.fit()
    mse = task.history[-1][1] if task.history else float("nan")
    return {"cell": cell, "T": T, "test_mse": mse, "solved": mse < SOLVED_MSE,
            "solved_at_step": task.solved_at, "steps": steps,
            "seconds": time.perf_counter() - t0}
