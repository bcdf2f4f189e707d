"""Run a recipe end to end: Fabric launch, run directory, task, Trainer, final test.

This is what ``rnnkit train`` calls, for every task::

    summary = run_training(load_recipe("configs/ptb_small.yaml"), recipe_name="ptb_small")

The run directory is ``--out`` if given, else ``<trainer.out_dir>/<trainer.name or recipe
name>`` (``-2``, ``-3``, ... appended when that one already holds a run, or another
training is starting in it).  ``resume`` is a run directory whose ``last/`` checkpoint the
run continues from; its ``trainer_state.json`` is checked before anything is built.

A training holds its run directory's lock (``<run_dir>/.rnnkit-run.lock``, see
:mod:`rnnkit.train.lock`) from start to end, so a second training into the same directory
stops at once, naming the directory and the holder; the lock of a killed run is free.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from rnnkit.train.checkpoint import has_checkpoint, read_trainer_state
from rnnkit.train.config import ConfigError, RunConfig
from rnnkit.train.lock import FileLock, LockError, describe_holder
from rnnkit.train.state import check_trainer_state, seed_everything, set_deterministic
from rnnkit.train.task import get_task_spec
from rnnkit.train.trainer import Trainer, make_fabric

__all__ = ["run_training", "resolve_run_dir", "claim_run_dir", "lock_run_dir", "device_description",
           "recipe_or_resume", "RUN_LOCK"]

#: the lock file of a run directory
RUN_LOCK = ".rnnkit-run.lock"


def recipe_or_resume(recipe: str | Path | None, overrides: list[str] | None,
                     resume: str | Path | None) -> tuple[RunConfig, str]:
    """``(config, recipe name)`` of a ``train`` command: ``recipe`` with ``overrides``, or, with
    only ``resume``, the config saved in ``<resume>/last/`` with ``overrides`` applied.  A kill
    between the two renames of a checkpoint save is repaired first."""
    from rnnkit.train.checkpoint import read_config, recover_interrupted
    from rnnkit.train.config import apply_overrides, build_run_config, load_recipe

    if recipe is None and resume is None:
        raise ConfigError("train: give a RECIPE.yaml, or --resume RUN_DIR to continue a run")
    if resume is not None:
        recover_interrupted(Path(resume) / "last")
    if recipe is not None:
        return load_recipe(recipe, overrides), Path(recipe).stem
    meta = read_config(Path(resume) / "last")
    return build_run_config(apply_overrides(meta["config"], overrides or [])), Path(resume).name


def resolve_run_dir(
    cfg: RunConfig, recipe_name: str, out: str | Path | None, resume: str | Path | None
) -> Path:
    """The run directory (see the module docstring); never an existing run unless resuming."""
    if resume is not None:
        run_dir = Path(resume)
        if not has_checkpoint(run_dir / "last"):
            raise ConfigError(f"--resume {run_dir}: no last/ checkpoint in this run directory")
        return run_dir
    if out is not None:
        run_dir = Path(out)
        if has_checkpoint(run_dir / "last"):
            raise ConfigError(
                f"--out {run_dir}: already holds a run (last/); pass --resume {run_dir} "
                "to continue it or another --out"
            )
        return run_dir
    base = Path(cfg.trainer.out_dir) / (cfg.trainer.name or recipe_name)
    run_dir, n = base, 1
    while _holds_run(run_dir):
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


def _holds_run(run_dir: Path) -> bool:
    return has_checkpoint(run_dir / "last") or has_checkpoint(run_dir / "best")


def lock_run_dir(run_dir: str | Path) -> FileLock:
    """Take the lock of ``run_dir`` (created if needed) for this process.

    Raises:
        LockError: another training holds it: ``"runs/x: another training is running in
            this run directory (pid 123 on host h since ...); ..."``.
    """
    run_dir = Path(run_dir)
    lock = FileLock(run_dir / RUN_LOCK, info={"command": " ".join(sys.argv)[:300]})
    try:
        return lock.acquire(timeout=0)
    except LockError:
        raise LockError(
            f"{run_dir}: another training is running in this run directory "
            f"({describe_holder(lock.holder())}); wait for it to end, or choose another "
            f"--out"
        ) from None


def claim_run_dir(cfg: RunConfig, recipe_name: str, out: str | Path | None,
                  resume: str | Path | None) -> tuple[Path, FileLock]:
    """:func:`resolve_run_dir`, locked: ``(run_dir, its lock)``; the caller releases the lock.

    The checks are made again once the lock is held, since a training that held it a moment
    ago may have written ``last/`` since; a name picked without ``--out`` skips directories
    that another training has just claimed.
    """
    if out is not None or resume is not None:
        run_dir = resolve_run_dir(cfg, recipe_name, out, resume)
        lock = lock_run_dir(run_dir)
        try:
            resolve_run_dir(cfg, recipe_name, out, resume)
        except BaseException:
            lock.release()
            raise
        return run_dir, lock
    base = Path(cfg.trainer.out_dir) / (cfg.trainer.name or recipe_name)
    for n in range(1, 10**6):
        run_dir = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if _holds_run(run_dir):
            continue
        lock = FileLock(run_dir / RUN_LOCK, info={"command": " ".join(sys.argv)[:300]})
        if not lock.try_acquire():
            continue  # another training is starting there
        if not _holds_run(run_dir):
            return run_dir, lock
        lock.release()
    raise ConfigError(f"{base}: no free run directory name")


def device_description(fabric: Any | None = None) -> str:
    """E.g. ``"cpu: AMD EPYC ... (2 threads)"`` or ``"cuda: NVIDIA H100 x1"``."""
    dev = getattr(fabric, "device", torch.device("cpu"))
    world = getattr(fabric, "world_size", 1)
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)} x{world}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu} ({torch.get_num_threads()} threads x {world} process(es))"


def run_training(cfg: RunConfig, *, recipe_name: str = "run", out: str | Path | None = None,
                 resume: str | Path | None = None, data_dir: str | None = None,
                 test_split: str | None = "test", console=None) -> dict[str, Any]:
    """Train ``cfg`` and return the summary (also written to ``<run_dir>/summary.json``);
    ranks other than 0 of a distributed run return ``{}``.

    After training the best checkpoint (lowest/highest ``trainer.monitor``) is evaluated on
    ``test_split`` when the data has it.
    """
    tc = cfg.trainer
    if data_dir is not None and hasattr(cfg.data, "data_dir"):
        # saved in the checkpoints, so evaluate finds the data again
        cfg.data.data_dir = str(data_dir)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    set_deterministic(tc.deterministic)
    spec = get_task_spec(cfg.task)
    fabric = make_fabric(tc)
    fabric.launch()
    run_dir, lock = None, None
    if fabric.global_rank == 0:
        run_dir, lock = claim_run_dir(cfg, recipe_name, out, resume)
        run_dir = str(run_dir)
    try:
        run_dir = Path(fabric.broadcast(run_dir, src=0))
        if resume is not None:  # the resume state, checked before the task builds data and model
            meta, tensors = read_trainer_state(run_dir / "last")
            check_trainer_state(meta, tensors, run_dir / "last" / "trainer_state.json")
            del meta, tensors
        return _train(cfg, spec, fabric, run_dir, resume, data_dir, test_split, console)
    finally:
        if lock is not None:
            lock.release()
            if lock.made_directory:  # a run that failed before writing anything leaves no directory
                try:
                    Path(run_dir).rmdir()
                except OSError:
                    pass


def _header(trainer: Trainer, cfg: RunConfig, fabric: Any, run_dir: Path, resumed: bool) -> None:
    """What is about to train, on what, and where it goes: printed once before the first step."""
    task, say = trainer.task, trainer.monitor.print
    n = sum(p.numel() for p in task.model.parameters())
    say(f"[bold]{'resuming' if resumed else 'training'}[/] {cfg.task} "
        f"({getattr(cfg.model, 'cell', type(task.model).__name__)}): {n:,} parameters")
    for k, v in (task.describe() if hasattr(task, "describe") else {}).items():
        say(f"  {k}: {v}")
    say(f"  device: {device_description(fabric)}")
    say(f"  run directory: {run_dir} (best/, last/, summary.json)")


def _train(cfg: RunConfig, spec: Any, fabric: Any, run_dir: Path, resume: Any, data_dir: str | None,
           test_split: str | None, console: Any) -> dict[str, Any]:
    seed_everything(cfg.trainer.seed)
    task = spec.build(cfg, data_dir=data_dir)
    trainer = Trainer(cfg, task, fabric, run_dir, console=console)
    _header(trainer, cfg, fabric, run_dir, resume is not None)
    result = trainer.fit(resume_from=run_dir / "last" if resume is not None else None)
    summary = json.loads((run_dir / "summary.json").read_text()) if fabric.global_rank == 0 else {}
    if result.best_metric is not None:
        trainer.monitor.print(f"[bold]best[/] {cfg.trainer.monitor} {result.best_metric:.4f} at "
                              f"step {trainer.state.best_step} -> {run_dir / 'best'}")
    if hasattr(task, "finalize") and trainer.load_best():
        fitted = task.finalize(trainer.raw_model)  # e.g. weights fitted on validation
        if fitted is not None:
            trainer.save("best", with_state=False)
            summary["finalized"] = fitted
            trainer.monitor.print("[bold]fitted on the best weights[/]: " + "  ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in fitted.items()))
    if test_split and test_split in getattr(task, "eval_splits", ()):
        trainer.load_best()
        test = {f"test_{k}": v for k, v in trainer.evaluate(test_split).items()}
        trainer.monitor.print(
            "[bold]test[/] (best checkpoint): " + "  ".join(f"{k} {v:.4f}" for k, v in test.items())
        )
        summary["test"] = test
    if fabric.global_rank != 0:
        return {}  # only rank 0 reports
    summary.update(
        run_dir=str(run_dir),
        wall_seconds=result.wall_seconds,
        device=device_description(fabric),
        world_size=fabric.world_size,
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
