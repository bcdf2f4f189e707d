"""The one Trainer: a training loop on Lightning Fabric that every pipeline reuses.

Per optimizer step::

    lr      = schedule(step, epoch, progress)            warm-up x (step | cosine | plateau)
    loss    = task.training_step(model, batch, carry)    carry: state threaded across batches
    g       = grad(loss)                                 averaged over ranks (DDP)
    norm    = ||g||_2 ; g *= min(1, clip / norm)         global-norm clipping (pre-clip norm logged)
    params  = optimizer.step(params, g)

Around it: evaluation (each epoch end and every ``val_every_steps``), ``best/`` and
``last/`` checkpoints (``last/`` also every ``checkpoint_every_steps`` mid-epoch, with the
carried state and RNGs, so a killed run resumes exactly), early stopping on the monitored
metric, a wall-clock budget, CSV/TensorBoard logs, a progress bar and the curve PNG.

Fabric supplies devices, ``strategy="ddp"`` (one process per device, gloo or NCCL),
``num_nodes`` and the precision plugins ("bf16-mixed", "16-mixed"); we own the loop, so
checkpoints are safetensors + JSON and resuming mid-epoch is exact.

Example::

    fabric = make_fabric(cfg.trainer); fabric.launch()
    task = LMTask(cfg); trainer = Trainer(cfg, task, fabric, Path("runs/x"))
    result = trainer.fit()
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rnnkit.train import checkpoint as ckpt
from rnnkit.train.config import RunConfig, TrainerConfig, to_dict
from rnnkit.train.fingerprint import data_fingerprints
from rnnkit.train.monitor import Monitor, plot_history
from rnnkit.train.optim import LRSchedule, build_optimizer
from rnnkit.train.state import (
    TrainState,
    capture_rng,
    check_optimizer_state,
    check_trainer_state,
    restore_rng,
)
from rnnkit.train.task import Task

__all__ = ["Trainer", "FitResult", "TrainingError", "make_fabric"]


class TrainingError(RuntimeError):
    """Training cannot go on (diverged loss, incompatible resume)."""


@dataclass
class FitResult:
    """Outcome of :meth:`Trainer.fit`."""

    run_dir: Path
    state: TrainState
    val_metrics: dict[str, float] = field(default_factory=dict)
    best_metric: float | None = None
    wall_seconds: float = 0.0


def make_fabric(t: TrainerConfig, callbacks: Any = ()) -> Any:
    """A Lightning Fabric for the trainer settings (call ``.launch()`` before building the task);
    ``callbacks`` are Fabric callbacks (e.g. an object with ``on_after_optimizer_step``)."""
    from lightning.fabric import Fabric

    return Fabric(accelerator=t.accelerator, strategy=t.strategy, devices=t.devices,
                  num_nodes=t.num_nodes, precision=t.precision, callbacks=list(callbacks))


def _version() -> str:
    from rnnkit.runtime import __version__

    return __version__


class Trainer:
    """Runs ``task`` under ``config`` with ``fabric``, writing into ``run_dir``.

    Args:
        config: the whole run config (saved into every checkpoint).
        task: a :class:`~rnnkit.train.task.Task`.
        fabric: a launched Lightning Fabric (see :func:`make_fabric`).
        run_dir: the run directory (``best/``, ``last/``, ``logs/``, ``curves.png``).
    """

    def __init__(self, config: RunConfig, task: Task, fabric: Any, run_dir: Path, *, console=None):
        self.cfg = config
        self.tc = config.trainer
        self.task = task
        self.fabric = fabric
        self.run_dir = Path(run_dir)
        self.rank, self.world = fabric.global_rank, fabric.world_size
        task.setup(self.rank, self.world)
        #: ``{split: sha256}`` of the data the task built, written into every checkpoint so
        #: that ``--resume`` can tell an edited corpus (None: the task has no data_splits)
        self.data_sha256 = data_fingerprints(task)
        self.raw_model = task.model
        optimizer = build_optimizer(self.raw_model.parameters(), config.optim)
        self.model, self.optimizer = fabric.setup(self.raw_model, optimizer)
        self.schedule = LRSchedule(config.schedule, config.optim.lr, mode=self.tc.mode)
        self.state = TrainState()
        self._best_state: dict[str, torch.Tensor] | None = None  # checkpoints="memory"
        self._stop_request: str | None = None
        self.carry: Any = None
        self.last_val: dict[str, float] = {}
        self.monitor = Monitor(self.run_dir / "logs", self.tc.loggers, task.item_name,
                               progress=self.tc.progress, log_every_steps=self.tc.log_every_steps,
                               enabled=self.rank == 0, console=console)

    # ------------------------------------------------------------------ checkpoints

    def _gather_carry(self) -> Any:
        """Carried state of every rank, stacked on a new leading dim ``(W, ...)``."""

        def gather(x: Any) -> Any:
            if x is None:
                return None
            if isinstance(x, torch.Tensor):
                g = self.fabric.all_gather(x.detach())
                return g.unsqueeze(0) if self.world == 1 else g
            return tuple(gather(v) for v in x)

        return gather(self.carry)

    def _select_carry(self, x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, torch.Tensor):
            if x.size(0) != self.world:
                raise TrainingError(
                    f"the checkpoint was written mid-epoch by {x.size(0)} process(es); resume it "
                    f"with trainer.devices x trainer.num_nodes = {x.size(0)} "
                    f"(this run has {self.world})"
                )
            return x[self.rank].to(self.fabric.device)
        return tuple(self._select_carry(v) for v in x)

    def save(self, name: str, *, with_state: bool = True) -> None:
        """Write ``run_dir/name`` atomically (rank 0), with resume state unless
        ``with_state=False``; with ``trainer.checkpoints="memory"`` keep ``best``'s weights
        in memory instead and write nothing."""
        if self.tc.checkpoints == "memory":
            if name == "best":
                self._best_state = {k: v.detach().clone()
                                    for k, v in self.raw_model.state_dict().items()}
            return
        carry = self._gather_carry() if with_state else None
        if self.rank == 0:
            tensors: dict[str, torch.Tensor] = {}
            meta = None
            if with_state:
                meta = {
                    "state": self.state.to_json(),
                    "world_size": self.world,
                    "optimizer": ckpt.optimizer_to_flat(self.optimizer.state_dict(), tensors),
                    "schedule": self.schedule.state_dict(),
                    "carry": ckpt.flatten_tensors(carry, "carry", tensors),
                    "rng": capture_rng(tensors),
                    "last_val": self.last_val,
                }
                if self.data_sha256 is not None:
                    meta["data_sha256"] = self.data_sha256
            ckpt.write_checkpoint(
                self.run_dir / name, model_state=self.raw_model.state_dict(),
                config=to_dict(self.cfg), task=self.task.name, version=_version(),
                trainer_tensors=tensors, trainer_json=meta, write_assets=self.task.write_assets,
            )
        self.fabric.barrier()

    def load(self, directory: Path) -> None:
        """Restore model, optimizer, schedule, counters, carried state and RNGs from ``directory``.

        Everything is checked (:func:`~rnnkit.train.state.check_trainer_state`, the optimizer
        state against this optimizer, the weights against this model) before anything is
        changed, so a bad checkpoint raises one CheckpointError line and leaves the Trainer as
        it was.
        """
        directory = ckpt.resolve_checkpoint(directory)
        where = directory / "trainer_state.json"
        ckpt.read_config(directory, task=self.task.name)
        meta, tensors = ckpt.read_trainer_state(directory)
        state = check_trainer_state(meta, tensors, where)
        optim = ckpt.optimizer_from_flat(meta["optimizer"], tensors, str(where))
        check_optimizer_state(optim, self.optimizer, where)
        carry = ckpt.unflatten_tensors(meta["carry"], tensors, str(where))
        carry = self._select_carry(carry) if state.batch_in_epoch > 0 else None
        ckpt.load_model_weights(self.raw_model, directory)
        try:
            self.optimizer.load_state_dict(optim)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ckpt.CheckpointError(
                f"{where}: the optimizer state does not fit this run's optimizer "
                f"({' '.join(str(e).split())[:200]})"
            ) from None
        self.schedule.load_state_dict(meta["schedule"])
        self.state = state
        self.last_val = dict(meta.get("last_val") or {})
        self.carry = carry
        restore_rng(meta["rng"], tensors)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, split: str = "valid") -> dict[str, float]:
        """Task metrics on ``split`` with the raw (un-wrapped) model, identical on every rank."""
        was = self.raw_model.training
        self.raw_model.eval()
        try:
            with torch.no_grad(), self.fabric.autocast():
                return self.task.evaluate(self.raw_model, split)
        finally:
            self.raw_model.train(was)

    def _validate(self) -> bool:
        """Evaluate, log, update plateau/best/early stopping; True if training should stop."""
        s, tc = self.state, self.tc
        if "valid" not in getattr(self.task, "eval_splits", ("valid",)):
            return False
        metrics = {f"val_{k}": v for k, v in self.evaluate("valid").items()}
        self.last_val = metrics
        s.history.append({"step": s.step, "epoch": s.epoch, "elapsed": round(s.elapsed, 1),
                          "cpu_seconds": round(s.cpu_seconds, 1), **metrics})
        self.monitor.log_metrics(metrics, s.step)
        # the epoch being trained (1-based); at an epoch's end, the one just finished
        shown = s.epoch + 1 if s.batch_in_epoch else s.epoch
        self.monitor.print(f"[bold]validation[/] step {s.step} epoch {shown}: "
                           + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if tc.monitor not in metrics:
            raise TrainingError(f"trainer.monitor={tc.monitor!r} is not a validation metric; "
                                f"expected one of {', '.join(metrics)}")
        value = metrics[tc.monitor]
        self.schedule.on_validation(value)
        better = s.best is None or (value < s.best - tc.min_delta if tc.mode == "min"
                                    else value > s.best + tc.min_delta)
        if better:
            s.best, s.best_step, s.bad_evals = value, s.step, 0
            self.save("best", with_state=False)
        else:
            s.bad_evals += 1
        # early stopping after `patience` evaluations without improvement (Keras, Lightning)
        if tc.patience is not None and s.bad_evals > 0 and s.bad_evals >= tc.patience:
            s.stopped = "early_stopping"
            self.monitor.print(
                f"early stopping: {tc.monitor} has not improved for {s.bad_evals} evaluations"
            )
            return True
        return False

    # ------------------------------------------------------------------ loop

    def _progress(self, elapsed: float, steps_per_epoch: int) -> float:
        tc, fr = self.tc, []
        if tc.max_steps:
            fr.append(self.state.step / tc.max_steps)
        else:
            fr.append(self.state.step / max(1, tc.max_epochs * steps_per_epoch))
        if tc.max_time_minutes:
            fr.append(elapsed / (60 * tc.max_time_minutes))
        return max(fr)

    def _tick(self) -> None:
        """Update the wall-clock and process-CPU seconds spent training (over all restarts)."""
        self.state.elapsed = self._wall0 + time.monotonic() - self._t0
        self.state.cpu_seconds = self._cpu0 + time.process_time() - self._c0

    def _budget_used(self) -> float:
        """Seconds counted against ``max_time_minutes``: wall clock, or this process's CPU time
        (``budget_clock: process``, immune to other programs sharing the cores)."""
        s = self.state
        return s.cpu_seconds if self.tc.budget_clock == "process" else s.elapsed

    def _budget_left(self) -> str:
        if self.tc.max_time_minutes is None:
            return ""
        left = max(0.0, 60 * self.tc.max_time_minutes - self._budget_used())
        return f" | budget {int(left // 60)}:{int(left % 60):02d} left"

    def _out_of_time(self, elapsed: float) -> bool:
        budget = self.tc.max_time_minutes
        over = budget is not None and elapsed >= 60 * budget
        if self.world > 1:  # every rank must agree, or the collectives would hang
            flag = torch.tensor([1.0 if over else 0.0], device=self.fabric.device)
            over = bool(self.fabric.all_reduce(flag, reduce_op="max").item() > 0)
        return over

    def _grad_norm(self) -> float:
        clip = self.tc.grad_clip
        if clip is not None:
            norm = self.fabric.clip_gradients(self.model, self.optimizer, max_norm=clip,
                                              error_if_nonfinite=False)
            return float(norm)
        grads = [p.grad.detach() for p in self.raw_model.parameters() if p.grad is not None]
        if not grads:
            return 0.0
        return float(
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        )

    def fit(self, resume_from: Path | None = None) -> FitResult:
        """Train until ``max_epochs``/``max_steps``/the time budget/early stopping."""
        from rnnkit.runtime import malloc_tuned, trim_malloc, tune_malloc

        # while training, keep freed memory for the scans' buffers (rnnkit.runtime.
        # tune_malloc); after, give it back, unless the process had tuned it itself
        ours = not malloc_tuned() and tune_malloc()
        try:
            return self._fit(resume_from)
        finally:
            if ours:
                trim_malloc()

    def _fit(self, resume_from: Path | None) -> FitResult:
        tc, s = self.tc, self.state
        if resume_from is not None:
            self.load(Path(resume_from))
            s = self.state
            if (
                (s.stopped == "max_epochs" and s.epoch < tc.max_epochs)
                or (s.stopped == "max_steps" and (tc.max_steps is None or s.step < tc.max_steps))
                or (s.stopped == "time" and not self._out_of_time(self._budget_used()))
            ):
                s.stopped = None  # the limit that ended the run was raised: go on
            self.monitor.print(
                f"resumed from {resume_from}: epoch {s.epoch + 1}, batch {s.batch_in_epoch}, "
                f"step {s.step}"
            )
        if "valid" not in getattr(self.task, "eval_splits", ("valid",)) and s.step == 0:
            self.monitor.print(
                "[bold yellow]no validation split[/] (it is empty or missing): nothing is "
                "evaluated during training and no best/ checkpoint is written; last/ holds the "
                "final weights (give the data a validation split: "
                f"{getattr(self.task, 'valid_split_key', 'data.valid_fraction')})")
        self._t0, self._wall0 = time.monotonic(), s.elapsed
        self._c0, self._cpu0 = time.process_time(), s.cpu_seconds
        stop = s.stopped is not None
        if tc.validate_at_start and not stop and s.step == 0 and not s.history:
            stop = self._validate()  # the untrained model is the first candidate
        stop = self._requested_stop() or stop
        since_log: list[float] = [0.0, 0.0, 0.0]  # loss*items, items, time
        while not stop and s.epoch < tc.max_epochs:
            total = self.task.steps_per_epoch(s.epoch)
            if s.batch_in_epoch == 0:
                self.carry = self.task.initial_carry()
            self.monitor.start_epoch(s.epoch, total, s.batch_in_epoch)
            self.model.train()
            t_last = time.monotonic()
            for batch in self.task.train_batches(s.epoch, s.batch_in_epoch):
                self._tick()
                lr = self.schedule.apply(self.optimizer, s.step, s.epoch,
                                         self._progress(self._budget_used(), total))
                out = self.task.training_step(self.model, batch, self.carry)
                self.fabric.backward(out.loss)
                norm = self._grad_norm()
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.carry = out.carry
                value = float(out.loss_value if out.loss_value is not None else out.loss.detach())
                if not math.isfinite(value):
                    raise TrainingError(f"training diverged: loss is {value} at step {s.step + 1} "
                                        f"(lower optim.lr or set trainer.grad_clip)")
                s.step += 1
                s.batch_in_epoch += 1
                s.items += out.n_items * self.world
                now = time.monotonic()
                since_log[0] += value * out.n_items
                since_log[1] += out.n_items
                since_log[2] += now - t_last
                t_last = now
                speed = since_log[1] * self.world / max(since_log[2], 1e-9)
                self.monitor.update(s.step, s.epoch, s.batch_in_epoch, total, value, lr, speed,
                                    self._budget_left())
                # the last step is logged too, so a short run still has its curves
                last = (tc.max_steps is not None and s.step >= tc.max_steps) or (
                    s.batch_in_epoch >= total and s.epoch + 1 >= tc.max_epochs)
                if s.step % tc.log_every_steps == 0 or last:
                    avg = since_log[0] / max(since_log[1], 1)
                    rec = {
                        "train_loss": avg,
                        "lr": lr,
                        "grad_norm": norm,
                        f"{self.task.item_name}_per_s": speed,
                    }
                    s.history.append({"step": s.step, "epoch": s.epoch, **rec})
                    self.monitor.log_metrics(rec, s.step)
                    since_log = [0.0, 0.0, 0.0]
                self._tick()
                if (
                    tc.val_every_steps
                    and s.step % tc.val_every_steps == 0
                    and s.batch_in_epoch < total
                ):
                    stop = self._validate()
                stop = self._requested_stop() or stop
                if tc.max_steps is not None and s.step >= tc.max_steps:
                    s.stopped, stop = "max_steps", True
                if self._out_of_time(self._budget_used()):
                    s.stopped, stop = "time", True
                if stop:
                    break
                if tc.checkpoint_every_steps and s.step % tc.checkpoint_every_steps == 0 \
                        and s.batch_in_epoch < total:
                    self.save("last")
            self.monitor.end_epoch()
            if s.batch_in_epoch >= total:  # the epoch is complete
                s.epoch, s.batch_in_epoch, self.carry = s.epoch + 1, 0, None
                self._tick()
                stop = self._validate() or stop
            elif s.stopped in ("time", "max_steps"):
                # a last evaluation, unless the step that hit the limit was just evaluated
                stop = (self._validate() if not self._evaluated_now() else False) or True
            stop = self._requested_stop() or stop
            if s.epoch >= tc.max_epochs and s.stopped is None:
                s.stopped = "max_epochs"
            self.save("last")
        return self._finish(time.monotonic() - self._t0)

    def _evaluated_now(self) -> bool:
        """Whether the newest history record is a validation at the current step."""
        h = self.state.history
        return bool(h) and h[-1].get("step") == self.state.step and any(
            k.startswith("val_") for k in h[-1])

    def _requested_stop(self) -> bool:
        """Whether :meth:`request_stop` was called (sets ``state.stopped``)."""
        if self._stop_request is not None and self.state.stopped is None:
            self.state.stopped = self._stop_request
        return self._stop_request is not None

    def _finish(self, wall: float) -> FitResult:
        s = self.state
        if self.rank == 0 and self.tc.plot:
            plot_history(s.history, self.run_dir / "curves.png", title=self.run_dir.name,
                         loss_label=getattr(self.task, "loss_name", None) or "loss")
        result = FitResult(self.run_dir, s, dict(self.last_val), s.best, wall)
        if self.rank == 0 and self.tc.checkpoints == "disk":
            summary = {
                "task": self.task.name,
                "stopped": s.stopped,
                "epoch": s.epoch,
                "step": s.step,
                "elapsed_seconds": s.elapsed,
                "cpu_seconds": s.cpu_seconds,
                "best": s.best,
                "best_step": s.best_step,
                "monitor": self.tc.monitor,
                "val": self.last_val,
            }
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.monitor.close()
        return result

    def request_stop(self, reason: str) -> None:
        """End training after the current step or evaluation, with ``state.stopped = reason``
        (a task's own stopping rule, e.g. "solved"); the run then finishes as usual."""
        self._stop_request = reason

    def load_best(self) -> bool:
        """Load the best weights into the model if there are any (after training)."""
        if self.tc.checkpoints == "memory":
            if self._best_state is None:
                return False
            self.raw_model.load_state_dict(self._best_state)
            return True
        best = ckpt.resolve_checkpoint(self.run_dir / "best")
        if not (best / "model.safetensors").is_file():
            return False
        ckpt.load_model_weights(self.raw_model, best)
        return True
