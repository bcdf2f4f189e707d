"""The adding problem under the microscope: gradient flow, clipping and gates while training.

For each cell (RNN tanh, LSTM, GRU, ...) this trains :class:`rnnkit.demos.adding.AddingModel`
exactly as the long-term dependency experiments do (``experiments/longmem/adding.py``: same
seed, same initialisation, same training batches, Adam, global-norm clipping, 1000 test
sequences drawn with seed 12345) and records::

    flow[step]      ||dL/dh_t|| (and ||dL/dc_t||) for t = 0..T-1 on a fixed probe batch,
                    at the snapshot steps (0 = initialisation)
    gates[step]     gate/state saturation statistics on the probe batch, and the values for
                    one probe sequence (heatmaps)
    clipping        the global gradient norm before and after clipping at every step
    test_mse        every ``eval_every`` steps (solved: < 0.01; always answering 1: 0.167)

The loss is the mean squared error of the read-out at the last step, so every gradient
that reaches the marked steps (one in each half of the sequence) has travelled back
through the recurrence from ``t = T - 1``.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.data.synthetic import ADDING_BASELINE_MSE, adding_problem

from .gates import gate_activity
from .gradient_flow import ClipRecord, flow_summary, hidden_gradient_norms

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
    from rnnkit.demos.adding import AddingModel

    bad = [s for s in snapshots if not 0 <= s <= steps]
    if bad:
        raise ValueError(f"snapshots: every snapshot step must be in [0, steps={steps}], got {bad}")
    x_test, y_test = adding_problem(1000, T, generator=torch.Generator().manual_seed(TEST_SEED))
    x_probe, y_probe = adding_problem(probe_size, T, generator=torch.Generator().manual_seed(PROBE_SEED))
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
        g = torch.Generator().manual_seed(seed + 1)
        model = AddingModel(cell, hidden)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        rec = ClipRecord(clip)
        snaps, history, solved_at, t0 = {}, [], None, time.perf_counter()
        if 0 in snapshots:
            snaps[0] = _snapshot(model, x_probe, y_probe, sequence)
        for step in range(1, steps + 1):
            x, y = adding_problem(batch, T, generator=g)
            loss = F.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            rec.clip(model.parameters())
            opt.step()
            if step % eval_every == 0 or step == steps:
                model.eval()
                with torch.no_grad():
                    mse = F.mse_loss(model(x_test), y_test).item()
                model.train()
                history.append([step, mse])
                if mse < SOLVED_MSE and solved_at is None:
                    solved_at = step
                log(f"{cell:9s} step {step:5d}  test MSE {mse:.5f}  grad norm {rec.before[-1]:.3g}"
                    f"  {time.perf_counter() - t0:6.1f}s")
            if step in snapshots:
                snaps[step] = _snapshot(model, x_probe, y_probe, sequence)
        result["cells"][cell] = {
            "test_mse": history, "final_test_mse": history[-1][1] if history else None,
            "solved_at_step": solved_at, "seconds": time.perf_counter() - t0,
            "clipping": {"summary": rec.summary(), "steps": rec.steps,
                         "before": [float(np.float32(v)) for v in rec.before],
                         "after": [float(np.float32(v)) for v in rec.after], "max_norm": clip},
            "snapshots": snaps}
    return result
