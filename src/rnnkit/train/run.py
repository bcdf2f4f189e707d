"""Run a recipe end to end: Fabric launch, run directory, task, Trainer, final test.

This is what ``rnnkit train`` calls, for every task::

    summary = run_training(load_recipe("configs/ptb_small.yaml"), recipe_name="ptb_small")

The run directory is ``--out`` if given, else ``<trainer.out_dir>/<trainer.name or recipe
name>`` (``-2``, ``-3``, ... appended when that one already holds a run).  ``resume`` is a
run directory whose ``last/`` checkpoint the run continues from; its ``trainer_state.json``
is checked before anything is built.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch

from rnnkit.tasks import get_task_spec
from rnnkit.train.checkpoint import read_trainer_state
from rnnkit.train.config import ConfigError, RunConfig
from rnnkit.train.state import check_trainer_state, seed_everything, set_deterministic
from rnnkit.train.trainer import Trainer, make_fabric

__all__ = ["run_training", "resolve_run_dir", "device_description"]


def resolve_run_dir(cfg: RunConfig, recipe_name: str, out: str | Path | None, resume: str | Path | None) -> Path:
    """The run directory (see the module docstring); never an existing run unless resuming."""
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "last").exists() and not any(run_dir.glob(".last.old-*")):
            raise ConfigError(f"--resume {run_dir}: no last/ checkpoint in this run directory")
        return run_dir
    if out is not None:
        run_dir = Path(out)
        if (run_dir / "last").exists():
            raise ConfigError(f"--out {run_dir}: already holds a run (last/); pass --resume {run_dir} "
                              "to continue it or another --out")
        return run_dir
    base = Path(cfg.trainer.out_dir) / (cfg.trainer.name or recipe_name)
    run_dir, n = base, 1
    while (run_dir / "last").exists() or (run_dir / "best").exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


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
        cfg.data.data_dir = str(data_dir)  # saved in the checkpoints, so evaluate finds the data again
    if tc.threads:
        torch.set_num_threads(tc.threads)
    set_deterministic(tc.deterministic)
    spec = get_task_spec(cfg.task)
    fabric = make_fabric(tc)
    fabric.launch()
    run_dir = None
    if fabric.global_rank == 0:
        run_dir = str(resolve_run_dir(cfg, recipe_name, out, resume))
    run_dir = Path(fabric.broadcast(run_dir, src=0))
    if resume is not None:  # the resume state, checked before the task builds data and model
        meta, tensors = read_trainer_state(run_dir / "last")
        check_trainer_state(meta, tensors, run_dir / "last" / "trainer_state.json")
        del meta, tensors
    seed_everything(tc.seed)
    task = spec.build(cfg, data_dir=data_dir)
    trainer = Trainer(cfg, task, fabric, run_dir, console=console)
    result = trainer.fit(resume_from=run_dir / "last" if resume is not None else None)
    summary = json.loads((run_dir / "summary.json").read_text()) if fabric.global_rank == 0 else {}
    if test_split and test_split in getattr(task, "eval_splits", ()):
        trainer.load_best()
        test = {f"test_{k}": v for k, v in trainer.evaluate(test_split).items()}
        trainer.monitor.print("[bold]test[/] (best checkpoint): " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()))
        summary["test"] = test
    if fabric.global_rank != 0:
        return {}  # only rank 0 reports
    summary.update(run_dir=str(run_dir), wall_seconds=result.wall_seconds, device=device_description(fabric),
                   world_size=fabric.world_size)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
