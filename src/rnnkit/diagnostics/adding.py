"""The adding problem under the microscope: gradient flow, clipping and gates while training.

For each cell (RNN tanh, LSTM, GRU, ...) this trains
:class:`~rnnkit.diagnostics.adding_task.AddingModel` exactly as the long-term dependency
experiments do (``experiments/longmem/adding.py``: same seed, same initialisation, same
training batches, Adam, global-norm clipping, 1000 test sequences drawn with seed 12345)
and records::

    flow[step]      ||dL/dh_t|| (and ||dL/dc_t||) for t = 0..T-1 on a fixed probe batch,
                    at the snapshot steps (0 = initialisation)
    gates[step]     gate/state saturation statistics on the probe batch, and the values for
                    one probe sequence (heatmaps)
    clipping        the global gradient norm before and after clipping at every step
    test_mse        every ``eval_every`` steps (solved: < 0.01; always answering 1: 0.167)

The loss is the mean squared error of the read-out at the last step, so every gradient that
reaches the marked steps (one in each half of the sequence) has travelled back through the
recurrence from ``t = T - 1``.

Training is :class:`rnnkit.train.Trainer`'s
(:class:`~rnnkit.diagnostics.adding_task.AddingTask`). What the study needs inside the loop
comes from what the Trainer already offers: the norm before clipping is the ``grad_norm``
the Trainer records at every step (``log_every_steps=1``); the norm after clipping and the
snapshots come from a Lightning Fabric callback, ``on_after_optimizer_step``, which runs
after the clipped gradients were applied and before they are zeroed.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.data.synthetic import ADDING_BASELINE_MSE, adding_problem
from rnnkit.train import OptimConfig

from .gates import gate_activity
from .gradient_flow import ClipRecord, flow_summary, gradient_norm, hidden_gradient_norms

__all__ = ["adding_study", "SOLVED_MSE", "PROBE_SEED", "TEST_SEED"]

SOLVED_MSE = 0.01
PROBE_SEED = 777
TEST_SEED = 12345


def _snapshot(model, x: torch.Tensor, y: torch.Tensor, sequence: int) -> dict:
    model.eval()
    flows = hidden_gradient_norms(model, lambda m: F.mse_loss(m(x), y))
    acts = gate_activity(model, lambda m: m(x), sequence=sequence)
    model.train()
    f, a = flows[0], acts[0]  # one layer, forward direction
    return {"loss": f["loss"], "norms": {k: v.tolist() for k, v in f["norms"].items()},
            "summary": {k: flow_summary(v) for k, v in f["norms"].items()},
            "gate_stats": a["stats"], "values": a["values"]}


class _AfterStep:
    """Fabric callback: after each optimizer step, the clipped gradients' norm and, at the
    snapshot steps, :func:`_snapshot` of the updated model."""

    def __init__(self, model, snapshots: tuple[int, ...], take: Callable[[], dict]):
        self.model, self.snapshots, self.take = model, snapshots, take
        self.step = 0
        self.after: list[float] = []  # ||g|| after clipping, per step
        self.snaps: dict[int, dict] = {}

    def on_after_optimizer_step(self, **_) -> None:
        self.step += 1
        self.after.append(gradient_norm(self.model.parameters()))
        if self.step in self.snapshots:
            self.snaps[self.step] = self.take()


def _norms_before(history: list[dict]) -> list[float]:
    """The Trainer's per-step ``grad_norm`` (the norm before clipping)."""
    return [r["grad_norm"] for r in history if "grad_norm" in r]


def adding_study(cells: tuple[str, ...] = ("rnn_tanh", "lstm", "gru"), T: int = 100,
                 steps: int = 3000, snapshots: tuple[int, ...] = (0, 3000), hidden: int = 128,
                 batch: int = 50, lr: float = 1e-3, clip: float | None = 1.0, seed: int = 0,
                 probe_size: int = 100, eval_every: int = 100, sequence: int = 0,
                 log: Callable[[str], None] = print) -> dict:
    """Train each cell on the adding problem at length ``T`` and record the diagnostics.

    Returns ``{"settings": {...}, "probe": {"markers": [t1, t2], "target": y},
    "cells": {cell: {"test_mse": [[step, mse]], "final_test_mse", "solved_at_step",
    "clipping": {...}, "snapshots": {step: {...}}}}}``; the snapshot "values" hold the probe
    sequence's gates and states as (T, H) arrays.
    """
    from rnnkit.diagnostics.adding_task import AddingModel, AddingTask, throwaway_trainer

    bad = [s for s in snapshots if not 0 <= s <= steps]
    if bad:
        raise ValueError(f"snapshots: every snapshot step must be in [0, steps={steps}], "
                         f"got {bad}")
    x_probe, y_probe = adding_problem(probe_size, T,
                                      generator=torch.Generator().manual_seed(PROBE_SEED))
    markers = torch.nonzero(x_probe[:, sequence, 1]).flatten().tolist()
    result = {"settings": {"T": T, "steps": steps, "hidden": hidden, "batch": batch, "lr": lr,
                           "optimizer": "adam", "clip": clip, "seed": seed,
                           "probe_size": probe_size, "probe_seed": PROBE_SEED,
                           "test_size": 1000, "test_seed": TEST_SEED, "solved_mse": SOLVED_MSE,
                           "baseline_mse": ADDING_BASELINE_MSE},
              "probe": {"sequence": sequence, "markers": markers,
                        "target": float(y_probe[sequence])},
              "cells": {}}
    for cell in cells:
        torch.manual_seed(seed)  # as experiments/longmem/adding.py: same init, same batches
        model = AddingModel(cell, hidden)
        t0 = time.perf_counter()
        after = _AfterStep(model, snapshots,
                           lambda m=model: _snapshot(m, x_probe, y_probe, sequence))
        if 0 in snapshots:
            after.snaps[0] = _snapshot(model, x_probe, y_probe, sequence)

        def on_eval(step: int, mse: float, cell=cell, after=after, t0=t0) -> None:
            norm = _norms_before(trainer.state.history)[-1] if clip is not None \
                else after.after[-1]
            log(f"{cell:9s} step {step:5d}  test MSE {mse:.5f}  grad norm {norm:.3g}"
                f"  {time.perf_counter() - t0:6.1f}s")

        task = AddingTask(model, T, steps, batch=batch, test_size=1000, test_seed=TEST_SEED,
                          generator=torch.Generator().manual_seed(seed + 1), on_eval=on_eval)
        with throwaway_trainer(task, OptimConfig(name="adam", lr=lr), callbacks=[after],
                               max_epochs=1, val_every_steps=eval_every, grad_clip=clip,
                               log_every_steps=1) as trainer:
            trainer.fit()
        # without clipping the Trainer's norm is a float32 sum; ours is float64, as the
        # norm after clipping (the same gradients)
        before = _norms_before(trainer.state.history) if clip is not None else after.after
        rec = ClipRecord(clip)
        for b, a in zip(before, after.after):
            rec.record(b, a)
        history = task.history
        result["cells"][cell] = {
            "test_mse": history, "final_test_mse": history[-1][1] if history else None,
            "solved_at_step": task.solved_at, "seconds": time.perf_counter() - t0,
            "clipping": {"summary": rec.summary(), "steps": rec.steps,
                         "before": [float(np.float32(v)) for v in rec.before],
                         "after": [float(np.float32(v)) for v in rec.after], "max_norm": clip},
            "snapshots": dict(sorted(after.snaps.items()))}
    return result
