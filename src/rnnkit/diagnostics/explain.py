"""``rnnkit explain``: gradient-flow and gate plots plus a JSON of the numbers.

Three targets, one output layout (``OUT/gradient_flow.png``, ``OUT/gates_*.png``,
``OUT/grad_clipping.png`` where a training history exists, ``OUT/explain.json``)::

    explain_checkpoint("runs/fsdd/best", "explain/fsdd")        # any pipeline's checkpoint
    explain_recipe("configs/fsdd.yaml", "explain/fresh")        # a freshly initialised model
    explain_adding("explain/adding", cells=("rnn_tanh", "lstm", "gru"), T=100, steps=3000)

For a checkpoint or a recipe the task is rebuilt from its config (so its data is read),
the first training batch is taken and the task's own training loss is differentiated;
dropout is off (``model.eval()``) and the task's random augmentation is seeded, so the
numbers are reproducible.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .adding import adding_study
from .gates import gate_activity, plot_gate_heatmaps
from .gradient_flow import flow_summary, hidden_gradient_norms, plot_clipping, plot_gradient_flow

__all__ = ["explain_model", "explain_checkpoint", "explain_recipe", "explain_adding",
           "clipping_from_history"]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        v = float(f"{float(obj):.6g}")  # 6 significant digits are plenty for plots and prose
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _write_json(path: Path, obj: dict) -> Path:
    text = json.dumps(_jsonable(obj), indent=1)
    # lists of numbers on one line each: readable, and a 3000-step history stays 3000 values wide
    text = re.sub(
        r"\[\s+([-+0-9.eEnul,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text
    )
    path.write_text(text + "\n")
    return path


def _tag(entry: dict) -> str:
    return f"{entry['module']}_l{entry['layer']}_{entry['direction']}".replace(".", "_")


def explain_model(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor],
                  out_dir: str | Path, *, name: str = "model", sequence: int = 0,
                  clipping: dict | None = None, extra: dict | None = None) -> dict:
    """Diagnostics of ``model`` on the batch that ``loss_fn(model)`` runs; writes the files.

    Returns the JSON written to ``out_dir/explain.json``: ``{"name", "files", "gradient_flow":
    [{module, layer, direction, cell, norms, summary}], "gates": [{..., "stats"}],
    "clipping"?}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    was = model.training
    model.eval()
    try:
        flows = hidden_gradient_norms(model, loss_fn)
        acts = gate_activity(model, loss_fn, sequence=sequence)
    finally:
        model.train(was)
    panels = {f"{f['module']} layer {f['layer']} {f['direction']}": {"": f["norms"]} for f in flows}
    files = [
        plot_gradient_flow(
            panels,
            out / "gradient_flow.png",
            title=f"{name}: gradient norm per time step (loss {flows[0]['loss']:.4g})",
        )
    ]
    for a in acts:
        files.append(
            plot_gate_heatmaps(
                a,
                out / f"gates_{_tag(a)}.png",
                title=f"{name}: {a['module']} layer {a['layer']} "
                f"{a['direction']}, sequence {sequence} ({a['cell']})",
            )
        )
    report = {
        "name": name,
        "mode": "eval (dropout off)",
        "sequence": sequence,
        "gradient_flow": [
            {
                **{k: f[k] for k in ("module", "layer", "direction", "cell", "loss", "lengths")},
                "norms": f["norms"],
                "summary": {k: flow_summary(v) for k, v in f["norms"].items()},
            }
            for f in flows
        ],
        "gates": [
            {k: a[k] for k in ("module", "layer", "direction", "cell", "length", "stats")}
            for a in acts
        ],
    }
    if clipping is not None and clipping.get("steps"):
        files.append(plot_clipping({name: clipping}, out / "grad_clipping.png",
                                   title="global gradient norm over training"))
        report["clipping"] = clipping
    report.update(extra or {})
    report["files"] = [str(p) for p in files] + [str(out / "explain.json")]
    _write_json(out / "explain.json", report)
    return report


def clipping_from_history(history: list[dict], max_norm: float | None) -> dict:
    """Before/after-clipping norms from a Trainer history (which logs the norm before
    clipping every ``log_every_steps``; after clipping it is ``min(norm, max_norm)``)."""
    rows = [h for h in history if "grad_norm" in h]
    before = [float(h["grad_norm"]) for h in rows]
    after = [min(b, max_norm) if max_norm else b for b in before]
    return {
        "steps": [int(h["step"]) for h in rows],
        "before": before,
        "after": after,
        "max_norm": max_norm,
        "source": "trainer history (logged steps); after = min(before, max_norm)",
    }


def _task_loss(task) -> Callable[[nn.Module], torch.Tensor]:
    """The task's training loss on its first training batch, with seeded augmentation."""
    task.setup(0, 1)
    batch = next(iter(task.train_batches(0, 0)))
    carry = task.initial_carry()

    def loss_fn(model: nn.Module) -> torch.Tensor:
        state = torch.random.get_rng_state()
        torch.manual_seed(0)  # the same augmentation masks for every call
        try:
            return task.training_step(model, batch, carry).loss
        finally:
            torch.random.set_rng_state(state)

    return loss_fn


def explain_checkpoint(checkpoint: str | Path, out_dir: str | Path, *, data_dir: str | None = None,
                       sequence: int = 0) -> dict:
    """Diagnostics of a checkpoint of any pipeline (its task rebuilt from config.json)."""
    from rnnkit.train.checkpoint import (
        load_model_weights,
        read_run_config,
        read_trainer_state,
    )
    from rnnkit.train.task import get_task_spec

    ckpt = Path(checkpoint)
    _, cfg = read_run_config(ckpt)
    task = get_task_spec(cfg.task).build(cfg, data_dir=data_dir)
    load_model_weights(task.model, ckpt)
    clipping = None
    for d in (ckpt, ckpt.parent / "last"):
        if (d / "trainer_state.json").is_file():
            state, _ = read_trainer_state(d)
            clipping = clipping_from_history(state.get("state", {}).get("history", []),
                                             cfg.trainer.grad_clip)
            break
    return explain_model(
        task.model,
        _task_loss(task),
        out_dir,
        name=f"{cfg.task} checkpoint {ckpt}",
        sequence=sequence,
        clipping=clipping,
        extra={"checkpoint": str(ckpt), "task": cfg.task},
    )


def explain_recipe(recipe: str | Path, out_dir: str | Path, *, overrides: list[str] | None = None,
                   data_dir: str | None = None, sequence: int = 0) -> dict:
    """Diagnostics of a freshly initialised model of a recipe (seeded by ``trainer.seed``)."""
    from rnnkit.train.config import load_recipe
    from rnnkit.train.state import seed_everything
    from rnnkit.train.task import get_task_spec

    cfg = load_recipe(recipe, overrides)
    seed_everything(cfg.trainer.seed)
    task = get_task_spec(cfg.task).build(cfg, data_dir=data_dir)
    return explain_model(task.model, _task_loss(task), out_dir,
                         name=f"fresh {cfg.task} model ({Path(recipe).name})", sequence=sequence,
                         extra={"recipe": str(recipe), "task": cfg.task, "initialised": True})


_LABELS = {"rnn_tanh": "RNN (tanh)", "rnn_relu": "RNN (relu)", "lstm": "LSTM", "gru": "GRU"}


def explain_adding(out_dir: str | Path, *, cells: tuple[str, ...] = ("rnn_tanh", "lstm", "gru"),
                   T: int = 100, steps: int = 3000, snapshots: tuple[int, ...] | None = None,
                   log: Callable[[str], None] = print, extra: dict | None = None, **kwargs) -> dict:
    """Adding-problem study (:func:`~rnnkit.diagnostics.adding.adding_study`) with plots:
    ``gradient_flow.png`` (cells side by side, one curve per snapshot), ``grad_clipping.png``,
    ``gates_<cell>.png`` (probe sequence after training, markers as dotted lines).
    ``extra`` is merged into the JSON's ``settings`` (e.g. the command and the device)."""
    import time

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    snapshots = tuple(sorted(set(snapshots if snapshots is not None else (0, steps))))
    res = adding_study(cells, T=T, steps=steps, snapshots=snapshots, log=log, **kwargs)
    label = lambda c: _LABELS.get(c, c)  # noqa: E731
    panels = {
        f"{label(c)} (test MSE {r['final_test_mse']:.3f})": {
            ("init" if s == 0 else f"step {s}"): snap["norms"] for s, snap in r["snapshots"].items()
        }
        for c, r in res["cells"].items()
    }
    files = [
        plot_gradient_flow(
            panels,
            out / "gradient_flow.png",
            title=f"Adding problem T={T}: ||dL/dh_t|| on {res['settings']['probe_size']} "
            "probe sequences (loss at t = T-1)",
        )
    ]
    files.append(plot_clipping({label(c): r["clipping"] for c, r in res["cells"].items()},
                               out / "grad_clipping.png",
                               title=f"Adding problem T={T}: gradient norm before/after clipping"))
    last = max(snapshots)
    for c, r in res["cells"].items():
        snap = r["snapshots"][last]
        act = {"module": "rnn", "layer": 0, "direction": "forward", "cell": c,
               "values": snap["values"], "stats": snap["gate_stats"]}
        files.append(
            plot_gate_heatmaps(
                act,
                out / f"gates_{c}.png",
                marks=res["probe"]["markers"],
                title=f"{label(c)} after {last} steps, probe sequence (markers at t = "
                f"{', '.join(map(str, res['probe']['markers']))}; "
                f"target {res['probe']['target']:.3f})",
            )
        )
    for r in res["cells"].values():
        for snap in r["snapshots"].values():
            snap.pop("values")  # the heatmaps show them; the JSON keeps the statistics
    res["files"] = [str(p) for p in files] + [str(out / "explain.json")]
    res["settings"].update(extra or {}, wall_seconds=round(time.perf_counter() - t0, 1))
    _write_json(out / "explain.json", res)
    return res
