"""The Trainer's hooks for throwaway fits (best weights kept in memory, a validation before the
first step, a stop the task asks for), early stopping's count and the epoch it reports. A linear
regression as the task, in process."""

from __future__ import annotations

import torch
from rich.console import Console
from torch import nn

from rnnkit.train import OptimConfig, RunConfig, StepOutput, Trainer, TrainerConfig, make_fabric


class Regression:
    """y = x @ w on 64 fixed rows; one epoch is ``steps`` full-batch steps."""

    name = "regression"
    item_name = "rows"
    eval_splits = ("valid",)

    def __init__(self, steps: int = 4, stop_after_evals: int | None = None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 3, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]])
        torch.manual_seed(0)
        self.model = nn.Linear(3, 1)
        self.steps, self.stop_after_evals = steps, stop_after_evals
        self.evals: list[tuple[float, dict[str, torch.Tensor]]] = []  # (loss, weights) per eval
        self.trainer: Trainer | None = None

    def setup(self, rank: int, world_size: int) -> None:
        pass

    def steps_per_epoch(self, epoch: int) -> int:
        return self.steps

    def train_batches(self, epoch: int, start_step: int):
        return iter(range(start_step, self.steps))

    def initial_carry(self):
        return None

    def training_step(self, model, batch, carry) -> StepOutput:
        return StepOutput(((model(self.x) - self.y) ** 2).mean(), None, len(self.x))

    def evaluate(self, model, split: str) -> dict[str, float]:
        loss = float(((model(self.x) - self.y) ** 2).mean())
        self.evals.append((loss, {k: v.clone() for k, v in model.state_dict().items()}))
        if self.stop_after_evals is not None and len(self.evals) == self.stop_after_evals:
            self.trainer.request_stop("solved")
        return {"loss": loss}

    def write_assets(self, directory) -> None:
        pass


def _fit(tmp_path, task: Regression, console: Console | None = None, **trainer) -> Trainer:
    tc = TrainerConfig(**{"max_epochs": 3, "accelerator": "cpu", "checkpoint_every_steps": None,
                          "loggers": [], "plot": False, "progress": False, "grad_clip": None,
                          **trainer})
    cfg = RunConfig(task="regression", data=None, model=None,
                    optim=OptimConfig(name="sgd", lr=0.05), trainer=tc)
    fabric = make_fabric(tc)
    fabric.launch()
    t = Trainer(cfg, task, fabric, tmp_path / "run", console=console or Console(quiet=True))
    task.trainer = t
    t.fit()
    return t


def test_memory_checkpoints_write_nothing_and_restore_the_best(tmp_path):
    task = Regression()
    # mode "max": the best evaluation is the first one (the loss only falls), not the last
    t = _fit(tmp_path, task, checkpoints="memory", mode="max")
    run = tmp_path / "run"
    assert not (run / "best").exists() and not (run / "last").exists()
    assert not (run / "summary.json").exists()
    assert len(task.evals) == 3 and task.evals[0][0] > task.evals[-1][0]
    final = {k: v.clone() for k, v in task.model.state_dict().items()}
    assert t.load_best()
    first = task.evals[0][1]
    assert all(torch.equal(task.model.state_dict()[k], first[k]) for k in first)
    assert not all(torch.equal(final[k], first[k]) for k in first)


def test_disk_checkpoints_still_write_best_and_last(tmp_path):
    _fit(tmp_path, Regression(), max_epochs=1)
    run = tmp_path / "run"
    assert (run / "best" / "model.safetensors").is_file() and (run / "last").is_dir()
    assert (run / "summary.json").is_file()


def test_validate_at_start_makes_the_untrained_model_the_first_candidate(tmp_path):
    task = Regression()
    w0 = {k: v.clone() for k, v in task.model.state_dict().items()}
    with torch.no_grad():
        untrained = float(((task.model(task.x) - task.y) ** 2).mean())
    t = _fit(tmp_path, task, checkpoints="memory", validate_at_start=True, mode="max",
             max_epochs=2)
    vals = [h for h in t.state.history if "val_loss" in h]
    assert vals[0]["step"] == 0 and vals[0]["val_loss"] == untrained
    assert len(vals) == 3  # at the start, then after each of 2 epochs
    assert t.state.best == untrained  # under mode "max" the untrained loss stays the best
    t.load_best()
    assert all(torch.equal(task.model.state_dict()[k], w0[k]) for k in w0)


def test_a_task_can_stop_training(tmp_path):
    task = Regression(stop_after_evals=2)
    t = _fit(tmp_path, task, checkpoints="memory", val_every_steps=3, max_epochs=5)
    # 4 steps per epoch: evaluations at step 3 (mid-epoch) and at the end of epoch 1 (step 4),
    # where the task asks to stop; no evaluation is repeated
    assert t.state.stopped == "solved"
    assert t.state.step == 4 and len(task.evals) == 2


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path):
    """As Keras and Lightning: patience=2 stops at the 2nd evaluation without improvement."""
    task = Regression()
    # mode "max" while the loss falls: every evaluation after the first is no improvement
    t = _fit(tmp_path, task, checkpoints="memory", mode="max", patience=2, max_epochs=10)
    assert t.state.stopped == "early_stopping"
    assert len(task.evals) == 3 and t.state.bad_evals == 2 and t.state.epoch == 3
    task0 = Regression()
    t0 = _fit(tmp_path / "p0", task0, checkpoints="memory", mode="max", patience=0, max_epochs=10)
    assert len(task0.evals) == 2 and t0.state.stopped == "early_stopping"


def test_validation_lines_name_the_epoch_just_trained(tmp_path):
    import io

    buf = io.StringIO()
    _fit(tmp_path, Regression(), console=Console(file=buf, width=200), checkpoints="memory",
         max_epochs=2, val_every_steps=3)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.startswith("validation")]
    # 4 steps per epoch: every 3rd step mid-epoch (3, 6) and at each epoch end (4, 8)
    assert [ln.split(":")[0] for ln in lines] == [
        "validation step 3 epoch 1", "validation step 4 epoch 1",
        "validation step 6 epoch 2", "validation step 8 epoch 2"]


def test_a_step_limit_on_an_evaluation_step_is_evaluated_once(tmp_path):
    """max_steps hit at a step that was just validated (val_every_steps): no second evaluation."""
    task = Regression()
    t = _fit(tmp_path, task, checkpoints="memory", val_every_steps=3, max_steps=6, max_epochs=5)
    assert t.state.stopped == "max_steps" and t.state.step == 6
    assert [h["step"] for h in t.state.history if "val_loss" in h] == [3, 4, 6]
    assert len(task.evals) == 3


def test_a_short_run_logs_its_last_step_so_its_curves_have_lr_and_grad_norm(tmp_path):
    from rnnkit.train.monitor import curve_panels

    t = _fit(tmp_path, Regression(), checkpoints="memory", max_steps=3, log_every_steps=50)
    train = [h for h in t.state.history if "train_loss" in h]
    assert [h["step"] for h in train] == [3] and train[0]["lr"] > 0 and train[0]["grad_norm"] > 0
    assert curve_panels(t.state.history)[-1]["title"] == "learning rate and gradient norm"


def test_no_validation_split_is_said_up_front(tmp_path):
    import io

    task = Regression()
    task.eval_splits = ()
    buf = io.StringIO()
    t = _fit(tmp_path, task, console=Console(file=buf, width=200), max_epochs=1)
    assert "no validation split" in buf.getvalue() and "no best/" in buf.getvalue()
    assert not (tmp_path / "run" / "best").exists() and (tmp_path / "run" / "last").is_dir()
    assert t.state.best is None
