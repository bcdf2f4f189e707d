"""Run a recipe end to end: Fabric launch, run directory, task, Trainer, final test.

This is what ``rnnkit train`` calls, for every task::

    summary = run_training(load_recipe("configs/ptb_small.yaml"), recipe_name="ptb_small")

The run directory is ``--out`` if given, else ``<trainer.out_dir>/<trainer.name or recipe
name>`` (``-2``, ``-3``, ... appended when that one already holds a run, or another
training is starting in it).  ``resume`` is a run directory whose ``last/`` checkpoint the
run continues from; its ``trainer_state.json`` is checked before anything is built.

Resuming checks that the run goes on as it started: the config keys that differ from
``last/config.json`` are printed, and those that lay the batches out (``data.*`` but for
where the data lives and evaluation-only keys, and ``trainer.seed``) may not change while the
run is mid-epoch; and the task rebuilt from the data must write the assets that ``last/``
holds (vocab.json, labels.json, ...), since the weights were trained for those: a corpus
edited since the run started would otherwise give every embedding row another token.  The
data itself is compared by hash (:mod:`rnnkit.train.fingerprint`): training data edited in
place is refused mid-epoch, and named in the header at an epoch's end.

A training holds its run directory's lock (``<run_dir>/.rnnkit-run.lock``, see
:mod:`rnnkit.train.lock`) from start to end, so a second training into the same directory
stops at once, naming the directory and the holder; the lock of a killed run is free.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from rnnkit.train.checkpoint import (
    assets_sha256,
    has_checkpoint,
    read_config,
    read_trainer_state,
    resolve_checkpoint,
)
from rnnkit.train.config import ConfigError, RunConfig, checkpoint_run_config, to_dict
from rnnkit.train.lock import FileLock, LockError, describe_holder
from rnnkit.train.state import (
    TrainState,
    check_trainer_state,
    seed_everything,
    set_deterministic,
)
from rnnkit.train.task import get_task_spec
from rnnkit.train.trainer import Trainer, TrainingError, make_fabric

__all__ = ["run_training", "resolve_run_dir", "claim_run_dir", "lock_run_dir", "device_description",
           "recipe_or_resume", "config_changes", "check_resume_config", "check_resume_assets",
           "check_resume_data", "RUN_LOCK"]

#: the lock file of a run directory
RUN_LOCK = ".rnnkit-run.lock"


def recipe_or_resume(recipe: str | Path | None, overrides: list[str] | None,
                     resume: str | Path | None) -> tuple[RunConfig, str]:
    """``(config, recipe name)`` of a ``train`` command: ``recipe`` with ``overrides``, or, with
    only ``resume``, the config saved in ``<resume>/last/`` with ``overrides`` applied.  A kill
    between the two renames of a checkpoint save is repaired first."""
    from rnnkit.train.checkpoint import recover_interrupted
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
        changes: list[tuple[str, Any, Any]] = []
        resumed: tuple[TrainState, dict | None] | None = None
        if resume is not None:  # the resume state, checked before the task builds data and model
            meta, tensors = read_trainer_state(run_dir / "last")
            state = check_trainer_state(meta, tensors, run_dir / "last" / "trainer_state.json")
            resumed = (state, meta.get("data_sha256"))
            del meta, tensors
            changes = check_resume_config(cfg, run_dir / "last", state)
        return _train(cfg, spec, fabric, run_dir, resumed, data_dir, test_split, console, changes)
    finally:
        if lock is not None:
            lock.release()
            if lock.made_directory:  # a run that failed before writing anything leaves no directory
                try:
                    Path(run_dir).rmdir()
                except OSError:
                    pass


# --------------------------------------------------------------------------- resume checks

#: leaf names of ``data.*`` keys that change where the data is read from or how it is
#: evaluated, never the training batches; any other data key lays the batches out
_NOT_BATCH_KEYS = ("data_dir", "download", "cache")


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def config_changes(cfg: RunConfig, checkpoint: str | Path) -> list[tuple[str, Any, Any]]:
    """``[(dotted key, value in the checkpoint's config.json, value in cfg)]`` of every key
    that differs, both sides with their defaults filled in (a key added since the checkpoint
    was written is no change)."""
    saved, built = read_config(checkpoint)["config"], True
    try:
        saved = to_dict(checkpoint_run_config(saved))
    except ConfigError:
        built = False  # another version's keys: compared as written, where both have them
    old = _flat(json.loads(json.dumps(saved, default=str)))
    new = _flat(json.loads(json.dumps(to_dict(cfg), default=str)))
    keys = set(old) | set(new) if built else set(old) & set(new)
    return [(k, old.get(k), new.get(k)) for k in sorted(keys) if old.get(k) != new.get(k)]


def _lays_out_batches(key: str, eval_only: tuple[str, ...] = ()) -> bool:
    """Whether changing ``key`` changes which batch is the k-th of an epoch, or its shape;
    ``eval_only``: the data config's keys that only change evaluation (``EVAL_ONLY_KEYS``)."""
    if key == "trainer.seed":  # shuffling, variable BPTT lengths
        return True
    leaf = key.rsplit(".", 1)[-1]
    return (key.startswith("data.") and leaf not in _NOT_BATCH_KEYS
            and not leaf.startswith("eval_") and key.removeprefix("data.") not in eval_only)


def check_resume_config(cfg: RunConfig, last: Path,
                        state: TrainState) -> list[tuple[str, Any, Any]]:
    """The config changes of a resume (:func:`config_changes`), refused when the run stopped
    mid-epoch and one of them lays the batches out: resuming "at batch k" of batches cut
    another way would skip or repeat data.

    Raises:
        ConfigError: ``"config key 'data.bptt': 25 in runs/x/last/config.json, 10 now; ..."``.
    """
    changes = config_changes(cfg, last)
    if state.batch_in_epoch > 0:
        eval_only = getattr(type(cfg.data), "EVAL_ONLY_KEYS", ())
        bad = [c for c in changes if _lays_out_batches(c[0], eval_only)]
        if bad:
            key, old, new = bad[0]
            more = f" (and {', '.join(k for k, _, _ in bad[1:])})" if bad[1:] else ""
            raise ConfigError(
                f"config key '{key}'{more}: {json.dumps(old)} in {last / 'config.json'}, "
                f"{json.dumps(new)} now; the run stopped mid-epoch (epoch {state.epoch + 1}, "
                f"batch {state.batch_in_epoch}) and this key decides what its batches hold, so "
                f"going on at batch {state.batch_in_epoch} of other batches would skip or repeat "
                f"data: resume with {key}={json.dumps(old)}, or change it where a run stopped "
                "at an epoch's end"
            )
    return changes


def _json_diff(a: Any, b: Any, path: str = "") -> str | None:
    """Where JSON value ``b`` (rebuilt) differs from ``a`` (saved) (``"itos[3]"``), or None:
    a key of ``b`` missing from ``a`` or holding another value (keys only ``a`` holds are not
    compared); floats within 1e-6 relative count as equal."""
    if isinstance(a, dict) and isinstance(b, dict):  # b, rebuilt, may hold fewer keys
        for k in sorted(b):
            if k not in a:
                return f"{path}.{k}".lstrip(".")
            d = _json_diff(a[k], b[k], f"{path}.{k}")
            if d is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path or '(top level)'} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _json_diff(x, y, f"{path}[{i}]")
            if d is not None:
                return d
        return None
    if (isinstance(a, float) or isinstance(b, float)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        same = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
        return None if same else (path.lstrip(".") or "(top level)")
    return None if a == b and type(a) is type(b) else (path.lstrip(".") or "(top level)")


def _asset_diff(saved: Path, rebuilt: Path) -> str | None:
    """None if the two asset files say the same, else what differs (for the message)."""
    a, b = saved.read_bytes(), rebuilt.read_bytes()
    if a == b:
        return None
    try:
        where = _json_diff(json.loads(a), json.loads(b))
    except ValueError:  # not JSON: the bytes differ
        return "its bytes"
    return None if where is None else f"at {where}"


def check_resume_assets(task: Any, last: Path) -> None:
    """The assets ``task`` (rebuilt from the current data) writes must be those of ``last``.

    A task writes them with ``resume_assets(directory)`` where it has one (the part of its
    assets that comes from the data alone: an anomaly detector's scaler and splits, not its
    error model, which is fitted with the weights), else ``write_assets``; in a JSON asset
    only the keys the rebuilt one holds are compared, and an asset that ``last`` lacks
    (written by a newer rnnkit) is not compared.  Tasks whose spec can ``load`` a checkpoint's
    assets resume with those instead, and are not checked here.

    Raises:
        TrainingError: ``"runs/x/last/labels.json: the task rebuilt from the data writes
            another labels.json (at classes[3]): the data changed since the run started; ..."``.
    """
    last = resolve_checkpoint(last)
    write = getattr(task, "resume_assets", None) or task.write_assets
    with tempfile.TemporaryDirectory(prefix="rnnkit-resume-") as tmp:
        write(Path(tmp))
        for name in assets_sha256(tmp):
            saved = last / name
            if not saved.is_file():
                continue
            what = _asset_diff(saved, Path(tmp) / name)
            if what is not None:
                raise TrainingError(
                    f"{saved}: the task rebuilt from the data now writes another {name} "
                    f"(differs {what}): the data changed since the run started, and the "
                    "checkpoint's weights were trained for the old one; resume with the data "
                    "the run started with, or start a new run"
                )


def check_resume_data(saved: dict[str, str] | None, now: dict[str, str] | None,
                      state: TrainState, last: Path) -> list[str]:
    """The splits whose data differs from what the run started on (``saved``, the
    ``data_sha256`` of ``last/trainer_state.json``; ``now``, the rebuilt task's), for the
    header; refused when the training split changed and the run stopped mid-epoch.  Nothing is
    compared where either side has no fingerprints (a checkpoint of an older rnnkit, a task
    without ``data_splits``).

    Raises:
        TrainingError: ``"runs/x/last/trainer_state.json: the training data is not what the
            run started on (sha256 1f2e3d4c5b6a in the checkpoint, 9a8b7c6d5e4f now); ..."``.
    """
    if not saved or not now:
        return []
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if "train" in changed and state.batch_in_epoch > 0:
        old, new = (str(v.get("train"))[:12] for v in (saved, now))
        raise TrainingError(
            f"{last / 'trainer_state.json'}: the training data is not what the run started on "
            f"(sha256 {old} in the checkpoint, {new} now): the data was edited, or is read "
            f"otherwise, since the run started, and it stopped mid-epoch (epoch "
            f"{state.epoch + 1}, batch {state.batch_in_epoch}), so going on at batch "
            f"{state.batch_in_epoch} of other data would skip or repeat data: resume with the "
            "data the run started on, or start a new run"
        )
    return changed


# --------------------------------------------------------------------------- training


def _header(trainer: Trainer, cfg: RunConfig, fabric: Any, run_dir: Path, resumed: bool,
            changes: list[tuple[str, Any, Any]] = (), data_changed: list[str] = (),
            batch_in_epoch: int = 0) -> None:
    """What is about to train, on what, and where it goes: printed once before the first step."""
    task, say = trainer.task, trainer.monitor.print
    n = sum(p.numel() for p in task.model.parameters())
    say(f"[bold]{'resuming' if resumed else 'training'}[/] {cfg.task} "
        f"({getattr(cfg.model, 'cell', type(task.model).__name__)}): {n:,} parameters")
    for k, v in (task.describe() if hasattr(task, "describe") else {}).items():
        say(f"  {k}: {v}")
    say(f"  device: {device_description(fabric)}")
    say(f"  run directory: {run_dir} (best/, last/, summary.json)")
    if changes:
        from rich.markup import escape

        say("  config changed since last/: " + escape(", ".join(
            f"{k} {json.dumps(old)} -> {json.dumps(new)}" for k, old, new in changes)))
        eval_only = getattr(type(cfg.data), "EVAL_ONLY_KEYS", ())
        moved = [k for k, _, _ in changes if k.removeprefix("data.") in eval_only]
        if moved:  # allowed mid-epoch, but the figures before and after measure other things
            say(f"  note: {', '.join(moved)} change(s) evaluation only; validation figures from "
                f"before the change (the best {cfg.trainer.monitor} behind best/, early "
                "stopping's patience) may not compare with those after it")
    if data_changed:  # mid-epoch only evaluation splits may have changed (check_resume_data)
        where = (f"at batch {batch_in_epoch} of the same training data" if batch_in_epoch
                 else "from an epoch's end on the new data")
        say(f"  data changed since last/ (the {', '.join(data_changed)} split(s) hash "
            f"otherwise): the run goes on {where}"
            + ("; validation figures from before may not compare with those after it"
               if set(data_changed) - {"train"} else ""))


def _train(cfg: RunConfig, spec: Any, fabric: Any, run_dir: Path,
           resumed: tuple[TrainState, dict | None] | None, data_dir: str | None,
           test_split: str | None, console: Any,
           changes: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    seed_everything(cfg.trainer.seed)
    resume = None if resumed is None else run_dir
    if resume is not None and spec.load is not None:
        # the checkpoint's own vocabulary/tokenizer/classes: the weights were trained for them
        # (trained again, a WordPiece tokenizer numbers its tokens otherwise)
        task = spec.load_task(resolve_checkpoint(run_dir / "last"), cfg, data_dir=data_dir)
    else:
        task = spec.build(cfg, data_dir=data_dir)
        if resume is not None:
            check_resume_assets(task, run_dir / "last")
    trainer = Trainer(cfg, task, fabric, run_dir, console=console)
    data_changed = [] if resumed is None else check_resume_data(
        resumed[1], trainer.data_sha256, resumed[0], run_dir / "last")
    _header(trainer, cfg, fabric, run_dir, resume is not None, changes, data_changed,
            0 if resumed is None else resumed[0].batch_in_epoch)
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
