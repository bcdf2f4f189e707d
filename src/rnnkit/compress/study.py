"""Measure what compression costs: a sparsity-vs-metric table and an int8 speed/metric report.

Both work for every pipeline through the Task contract (:mod:`rnnkit.train.task`): the
checkpoint's own recipe rebuilds its task (data, splits, preprocessing), the weights are
loaded, and ``task.evaluate(model, split)`` gives the metric the run monitored
(``trainer.monitor``, e.g. ``val_loss``).  Fine-tuning after pruning is the one Trainer run
for ``finetune_steps`` optimizer steps on the pruned model (the masks keep pruned weights
at zero while the others adapt).

Example::

    rows = prune_table(
        "runs/shakespeare_char/best", [0.5, 0.8], scopes=["global"], finetune_steps=50
    )
    print(table_markdown(rows))
    report = quantize_report("runs/shakespeare_char/best")   # speed-up and metric change
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit.compress.prune import make_permanent, prune_model, sparsity
from rnnkit.compress.quantize import model_bytes, quantize_dynamic, to_torch_recurrent

__all__ = ["load_task", "monitored", "finetune", "prune_table", "table_markdown", "quantize_report",
           "save_checkpoint"]


def load_task(checkpoint: str | Path, *, data_dir: str | None = None,
              overrides: list[str] | None = None) -> tuple[Any, Any]:
    """``(task, run config)`` rebuilt from a checkpoint's recipe, its weights loaded.

    ``overrides`` (``key=value``) change the recipe first (e.g. ``data.eval_batch_size=16``).
    """
    from rnnkit.train.checkpoint import load_model_weights, read_config
    from rnnkit.train.config import apply_overrides, checkpoint_run_config
    from rnnkit.train.task import get_task_spec

    d = Path(checkpoint)
    meta = read_config(d)
    cfg = checkpoint_run_config(apply_overrides(meta["config"], overrides))
    task = get_task_spec(cfg.task).load_task(d, cfg, data_dir=data_dir)
    load_model_weights(task.model, d)
    task.model.eval()
    return task, cfg


def monitored(cfg: Any) -> tuple[str, str]:
    """``(metric key of task.evaluate, "min" | "max")`` from ``trainer.monitor``
    ("val_loss" -> "loss")."""
    m = cfg.trainer.monitor
    return (m[4:] if m.startswith("val_") else m), cfg.trainer.mode


def _evaluate(task: Any, model: nn.Module, split: str) -> dict[str, float]:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in task.evaluate(model, split).items()}
    finally:
        model.train(was)


def finetune(
    task: Any,
    cfg: Any,
    steps: int,
    *,
    lr_scale: float = 0.3,
    run_dir: str | Path | None = None,
    overrides: list[str] | None = None,
) -> tuple[float, dict[str, float]]:
    """Train ``task.model`` (pruned or not) for ``steps`` optimizer steps with the one Trainer;
    returns the wall seconds and the final validation metrics (``{}`` if the task has none).
    The recipe's optimizer and schedule are kept, with the learning rate (and a cosine
    schedule's ``min_lr``, so its shape is kept) times ``lr_scale`` and no warm-up;
    checkpoints go to a temporary ``run_dir``."""
    from rnnkit.train.config import apply_overrides, build_run_config, to_dict
    from rnnkit.train.trainer import Trainer, make_fabric

    if not (isinstance(lr_scale, (int, float)) and math.isfinite(lr_scale) and lr_scale > 0):
        raise ValueError(f"--finetune-lr-scale={lr_scale}: expected a positive finite number")
    if steps < 1:
        return 0.0, {}
    raw = to_dict(cfg)
    raw["optim"]["lr"] = cfg.optim.lr * lr_scale
    raw["schedule"]["min_lr"] = cfg.schedule.min_lr * lr_scale
    raw["schedule"]["warmup_steps"] = 0
    raw["trainer"].update(
        max_steps=steps,
        max_epochs=10**6,
        max_time_minutes=None,
        val_every_steps=None,
        checkpoint_every_steps=None,
        patience=None,
        loggers=[],
        plot=False,
        progress=False,
        devices=1,
        num_nodes=1,
        strategy="auto",
    )
    ft = build_run_config(apply_overrides(raw, overrides))
    tmp = None
    if run_dir is None:
        tmp = run_dir = tempfile.mkdtemp(prefix="rnnkit-finetune-")
    try:
        fabric = make_fabric(ft.trainer)
        fabric.launch()
        old = task.config
        task.config = ft
        try:
            trainer = Trainer(ft, task, fabric, Path(run_dir))
            t0 = time.perf_counter()
            result = trainer.fit()
            val = {k[4:]: float(v) for k, v in result.val_metrics.items() if k.startswith("val_")}
            return time.perf_counter() - t0, val
        finally:
            task.config = old
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def save_checkpoint(
    task: Any, cfg: Any, directory: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``task.model`` (masks folded in) as an ordinary rnnkit checkpoint with the task's
    assets."""
    from rnnkit.runtime import __version__
    from rnnkit.train.checkpoint import write_checkpoint
    from rnnkit.train.config import to_dict

    path = write_checkpoint(directory, model_state=task.model.state_dict(), config=to_dict(cfg),
                            task=task.name, version=__version__, write_assets=task.write_assets)
    if extra:
        (path / "compression.json").write_text(json.dumps(extra, indent=1) + "\n")
    return path


def prune_table(
    checkpoint: str | Path,
    amounts: list[float],
    *,
    scopes: list[str] = ("global",),
    finetune_steps: int = 0,
    split: str = "valid",
    linear: bool = False,
    lr_scale: float = 0.3,
    data_dir: str | None = None,
    overrides: list[str] | None = None,
    save_dir: str | Path | None = None,
    log=print,
) -> list[dict[str, Any]]:
    """Prune the checkpoint at each ``amount`` and ``scope``, fine-tune, and measure.

    Returns one row per (scope, amount) plus the dense baseline (``amount`` 0):
    ``{"scope", "amount", "sparsity", "metric", "before", "after", "finetune_steps",
    "finetune_seconds", "metrics_before", "metrics_after"}``; ``before``/``after`` are the
    monitored metric on ``split`` right after pruning and after fine-tuning.
    With ``save_dir`` each fine-tuned model is saved as ``<save_dir>/<scope>-<amount>/``.

    Raises:
        ValueError: ``amounts`` empty, an amount not a fraction in (0, 1) (0 is the dense
            row, always there), two amounts alike (one row, one saved model each), or
            ``scopes`` empty or not "global"/"layer".
    """
    amounts = list(amounts)
    if not amounts:
        raise ValueError("amounts: empty; expected at least one fraction in (0, 1)")
    for i, a in enumerate(amounts):
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 < a < 1.0:
            raise ValueError(f"amounts[{i}]: {a!r} is not a fraction in (0, 1)")
    seen: dict[str, float] = {}
    for a in amounts:
        if f"{a:g}" in seen:
            raise ValueError(f"amounts: {seen[f'{a:g}']:g} and {a:g} are the same amount "
                             "(each amount is one row and one saved model)")
        seen[f"{a:g}"] = a
    scopes = list(scopes)
    if not scopes or any(sc not in ("global", "layer") for sc in scopes):
        raise ValueError(f"scopes: {scopes!r}; expected global, layer or both")
    task, cfg = load_task(checkpoint, data_dir=data_dir, overrides=overrides)
    key, _ = monitored(cfg)
    if split not in getattr(task, "eval_splits", (split,)):
        raise ValueError(
            f"--split {split}: the checkpoint's data has {', '.join(task.eval_splits)}"
        )
    from rnnkit.train.checkpoint import load_model_weights

    dense = _evaluate(task, task.model, split)
    if key not in dense:
        raise ValueError(
            f"trainer.monitor={cfg.trainer.monitor!r}: {key!r} is not among the metrics "
            f"{sorted(dense)}"
        )
    log(f"dense: {key} {dense[key]:.4f}")
    pruned_share = _pruned_share(task.model, linear)
    log(f"pruning {pruned_share:.1%} of the model's parameters (the recurrent layers' input and "
        f"recurrent weights{', and every Linear' if linear else ''}); sparsity below is theirs")
    rows = [
        {
            "scope": "dense",
            "amount": 0.0,
            "sparsity": 0.0,
            "metric": key,
            "before": dense[key],
            "after": dense[key],
            "finetune_steps": 0,
            "finetune_seconds": 0.0,
            "metrics_before": dense,
            "metrics_after": dense,
            "share_of_model": pruned_share,
            "model_sparsity": 0.0,
        }
    ]
    for scope in scopes:
        for a in amounts:
            load_model_weights(task.model, checkpoint)
            targets = prune_model(task.model, a, scope=scope, linear=linear)
            sp = sparsity(targets)["total"]
            before = _evaluate(task, task.model, split)
            secs, val = finetune(task, cfg, finetune_steps, lr_scale=lr_scale)
            after = before if not finetune_steps else val if split == "valid" and val else \
                _evaluate(task, task.model, split)
            make_permanent(targets)
            row = {
                "scope": scope,
                "amount": a,
                "sparsity": sp,
                "metric": key,
                "before": before[key],
                "after": after[key],
                "finetune_steps": finetune_steps,
                "finetune_seconds": secs,
                "metrics_before": before,
                "metrics_after": after,
                "layers": {k: v for k, v in sparsity(targets).items() if k != "total"},
                "share_of_model": pruned_share,  # of all parameters, in the pruned set
                "model_sparsity": sp * pruned_share,
            }
            rows.append(row)
            log(
                f"{scope} {a:.2f}: sparsity {sp:.3f}  {key} {before[key]:.4f} -> "
                f"{after[key]:.4f} after {finetune_steps} fine-tuning steps"
            )
            if save_dir is not None:
                save_checkpoint(task, cfg, Path(save_dir) / f"{scope}-{a:g}",
                                {"pruning": {k: row[k] for k in ("scope", "amount", "sparsity")},
                                 "source": str(checkpoint)})
    load_model_weights(task.model, checkpoint)
    return rows


def _pruned_share(model: nn.Module, linear: bool) -> float:
    """The fraction of ``model``'s parameters that :func:`prune_model` prunes: all of an
    LSTM's recurrent layer, a small part of a stack of Griffin or Mamba blocks."""
    from rnnkit.compress.prune import prunable_weights

    total = sum(p.numel() for p in model.parameters())  # tied weights counted once
    return sum(getattr(m, n).numel() for _, m, n in prunable_weights(model, linear=linear)) \
        / max(total, 1)


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """The sparsity-vs-metric table as markdown."""
    key = rows[0]["metric"]
    out = [f"| scope | target | sparsity | of the model | {key} pruned | {key} fine-tuned | "
           "steps |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        whole = f"{r['model_sparsity']:.3f}" if "model_sparsity" in r else "-"
        out.append(
            f"| {r['scope']} | {r['amount']:.2f} | {r['sparsity']:.3f} | {whole} | "
            f"{r['before']:.4f} | {r['after']:.4f} | {r['finetune_steps']} |"
        )
    return "\n".join(out) + "\n"


def _time(fn, repeats: int) -> list[float]:
    """Process CPU seconds of each call (single-threaded work: immune to other processes
    sharing the cores, unlike wall-clock time)."""
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return out


def _lm_step_fn(model: nn.Module, steps: int = 200, onednn: bool = True):
    """One token at a time with the state carried (generation), batch 1."""

    @torch.no_grad()
    def run() -> None:
        state, tok = None, torch.zeros(1, 1, dtype=torch.long)
        with torch.backends.mkldnn.flags(enabled=onednn):
            for _ in range(steps):
                _, state = model(tok, state)

    return run


def quantize_report(
    checkpoint: str | Path,
    *,
    split: str = "valid",
    repeats: int = 3,
    linear: bool = True,
    data_dir: str | None = None,
    overrides: list[str] | None = None,
    threads: int | None = 1,
    log=print,
) -> dict[str, Any]:
    """Float vs dynamic-int8 on CPU: the monitored metric, model size and time.

    Three variants are timed in process CPU seconds, interleaved, ``repeats`` times each
    (median reported): the checkpoint's float model as rnnkit runs it, the same converted to
    ``torch.nn`` layers (float; the int8 model's own float twin) and the int8 model.  Timed
    work: evaluating ``split`` (batched, the task's evaluation batches) and, for language
    models, 200 tokens of generation one step at a time (batch 1; also timed for the float
    model with oneDNN disabled, ``float_no_onednn``, since oneDNN's per-call set-up dominates
    such small steps).
    """
    if threads:
        torch.set_num_threads(threads)
    task, cfg = load_task(checkpoint, data_dir=data_dir, overrides=overrides)
    key, mode = monitored(cfg)
    fp = task.model.cpu().eval()
    twin, _, _ = to_torch_recurrent(copy.deepcopy(fp))
    q, rep = quantize_dynamic(fp, linear=linear)
    variants = {"float": fp, "float_torch_nn": twin, "int8": q}
    metrics = {k: _evaluate(task, m, split) for k, m in variants.items()}
    works = {"evaluate": {k: (lambda m=m: _evaluate(task, m, split)) for k, m in variants.items()}}
    from rnnkit.models.lm import LanguageModel

    # a model that generates token by token: time batch-1 steps too, where oneDNN's per-call
    # overhead dominates (and ATen's kernel with oneDNN off)
    if isinstance(fp, LanguageModel):
        works["generate_200_tokens"] = {k: _lm_step_fn(m) for k, m in variants.items()}
        works["generate_200_tokens"]["float_no_onednn"] = _lm_step_fn(fp, onednn=False)
    times: dict[str, dict[str, list[float]]] = {w: {k: [] for k in fns} for w, fns in works.items()}
    for w, fns in works.items():
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(repeats):
            for k, fn in fns.items():
                times[w][k] += _time(fn, 1)
    med = {w: {k: statistics.median(v) for k, v in t.items()} for w, t in times.items()}
    report = {
        "checkpoint": str(checkpoint),
        "task": task.name,
        "split": split,
        "metric": key,
        "mode": mode,
        "metrics": metrics,
        "metric_change": metrics["int8"][key] - metrics["float"][key],
        "bytes": {"float": model_bytes(fp), "int8": model_bytes(q)},
        "cpu_seconds_median": med,
        "cpu_seconds_all": times,
        "repeats": repeats,
        "speedup_vs_float": {w: m["float"] / m["int8"] for w, m in med.items()},
        "speedup_vs_float_torch_nn": {w: m["float_torch_nn"] / m["int8"] for w, m in med.items()},
        "converted": rep["converted"],
        "skipped": rep["skipped"],
        "threads": torch.get_num_threads(),
    }
    log(f"{key}: float {metrics['float'][key]:.4f}  int8 {metrics['int8'][key]:.4f}  "
        f"(change {report['metric_change']:+.4f})")
    for w, m in med.items():
        log(
            f"{w} (CPU s): float {m['float']:.3f}  float(torch.nn) {m['float_torch_nn']:.3f}  "
            f"int8 {m['int8']:.3f}  speed-up x{report['speedup_vs_float'][w]:.2f} "
            f"(vs torch.nn float x{report['speedup_vs_float_torch_nn'][w]:.2f})"
        )
    return report
