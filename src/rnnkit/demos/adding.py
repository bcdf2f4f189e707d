"""The adding problem: who can remember two numbers across T steps?

Trains ``rnnkit.RNN`` (tanh), ``rnnkit.GRU`` and ``rnnkit.LSTM`` on the adding
problem (see :mod:`rnnkit.data.synthetic`) with the same budget and prints who
solves it (test MSE < 0.01; always answering 1 scores 0.167). At T = 100 the
vanilla RNN's gradient vanishes across the gap between the two markers and it
stays at the baseline, while the gated cells solve it.

    rnnkit demo adding [--T 100] [--steps 2000] [--hidden 64] [--lr 0.01]

Training is :class:`rnnkit.train.Trainer`'s, through :mod:`rnnkit.diagnostics.adding_task`
(the problem as a Task, shared with ``rnnkit explain adding`` and the experiments).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from rnnkit.data.synthetic import ADDING_BASELINE_MSE, adding_problem
from rnnkit.diagnostics.adding_task import (
    SOLVED_MSE,
    TEST_SEED,
    AddingModel,
    AddingTask,
    throwaway_trainer,
    train_adding,
)

# the adding problem's pieces are rnnkit.diagnostics.adding_task's, re-exported
__all__ = ["AddingModel", "AddingTask", "throwaway_trainer", "train_adding", "adding_demo"]


def adding_demo(T: int = 100, steps: int = 2000, hidden: int = 64, lr: float = 1e-2,
                seed: int = 0, console: Console | None = None,
                out: str | Path | None = None) -> list[dict]:
    """Train RNN (tanh), GRU and LSTM with the same budget, print who solves the adding
    problem (a rich table) and return :func:`train_adding`'s results.

    Progress is printed as it goes (a line per model every tenth of its steps), and ``out``
    (a directory) receives ``results.json``, ``table.md`` and ``gradient_flow.png``: the
    trained models' ``||dL/dh_t||`` over time on 64 test sequences (loss at the last step).
    """
    console = console or Console()
    console.print(f"Adding problem, T={T}: baseline MSE {ADDING_BASELINE_MSE:.3f}, "
                  f"solved means test MSE < {SOLVED_MSE}; 3 models x {steps} steps")
    table = Table(title=f"Adding problem, T={T}, {steps} steps of batch 50")
    for col in ("model", "test MSE", "solved", "solved at step", "seconds"):
        table.add_column(col)
    results, models = [], {}
    every = max(steps // 10, 100)
    for cell in ("rnn_tanh", "gru", "lstm"):
        t0 = time.perf_counter()

        def progress(step: int, mse: float, cell: str = cell, t0: float = t0) -> None:
            if step % every == 0 or step == steps:
                console.print(f"  {cell:9s} step {step:6d}  test MSE {mse:.4f}  "
                              f"{time.perf_counter() - t0:6.0f} s")

        keep: dict = {}
        r = train_adding(cell, T, steps, hidden, lr=lr, seed=seed, on_eval=progress, keep=keep)
        models[cell] = keep["model"]
        results.append(r)
        console.print(f"{cell:9s} test MSE {r['test_mse']:.4f}"
                      f"{'  solved at step ' + str(r['solved_at_step']) if r['solved'] else ''}")
        table.add_row(cell, f"{r['test_mse']:.4f}", "yes" if r["solved"] else "no",
                      str(r["solved_at_step"] or "-"), f"{r['seconds']:.0f}")
    console.print(table)
    if out is not None:
        _write_outputs(Path(out), results, models, T, steps, hidden, lr, seed)
        console.print(f"results, table and gradient flow: {Path(out)}")
    return results


def _write_outputs(out: Path, results: list[dict], models: dict[str, nn.Module], T: int,
                   steps: int, hidden: int, lr: float, seed: int) -> None:
    """results.json, table.md and gradient_flow.png of a finished demo."""
    import json

    from ..diagnostics.gradient_flow import hidden_gradient_norms, plot_gradient_flow

    out.mkdir(parents=True, exist_ok=True)
    settings = {"T": T, "steps": steps, "hidden": hidden, "lr": lr, "seed": seed, "batch": 50}
    (out / "results.json").write_text(json.dumps({"settings": settings, "results": results},
                                                 indent=2) + "\n")
    rows = ["| model | test MSE | solved | solved at step | seconds |", "|---|---|---|---|---|"]
    rows += [f"| {r['cell']} | {r['test_mse']:.4f} | {'yes' if r['solved'] else 'no'} | "
             f"{r['solved_at_step'] or '-'} | {r['seconds']:.0f} |" for r in results]
    (out / "table.md").write_text("\n".join(rows) + "\n")
    x, y = adding_problem(64, T, generator=torch.Generator().manual_seed(TEST_SEED))
    panels = {}
    for cell, model in models.items():
        flows = hidden_gradient_norms(model, lambda m: F.mse_loss(m(x), y))
        panels[cell] = {"trained": flows[0]["norms"]}
    plot_gradient_flow(panels, out / "gradient_flow.png",
                       title=f"Adding problem T={T}: ||dL/dh_t|| after {steps} steps")
