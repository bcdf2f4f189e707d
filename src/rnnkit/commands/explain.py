"""``rnnkit explain``: gradient flow, gradient clipping and gate plots plus a JSON of the numbers.

::

    rnnkit explain CKPT [--data-dir DIR] [--out DIR]                a checkpoint of any pipeline
    rnnkit explain RECIPE.yaml [--set k=v ...] [--out DIR]          a freshly initialised model
    rnnkit explain adding [--cells rnn_tanh,lstm,gru] [--T 100] [--steps 3000] [--out DIR]

Writes ``gradient_flow.png``, ``gates_*.png``, ``grad_clipping.png`` (when there is a
training history) and ``explain.json`` into ``--out`` (default ``explain/<name>``), then
prints the JSON's path and a one-line summary per recurrent layer.
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "cmd_explain"]


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``explain`` to an ``argparse`` sub-parser set; returns the new parser."""
    help_text = (
        "gradient flow, clipping and gate plots (PNG + JSON) for a checkpoint, recipe or the "
        "adding problem"
    )
    p = subparsers.add_parser(
        "explain", help=help_text, description=help_text[0].upper() + help_text[1:] + "."
    )
    p.add_argument("target", help="a checkpoint directory (or a run directory: its best/), a YAML "
                   "recipe (fresh model) or 'adding'")
    p.add_argument("--out", metavar="DIR", help="output directory (default explain/<target name>)")
    p.add_argument("--data-dir", metavar="DIR", help="directory holding known datasets")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override (recipe target only; repeatable)")
    p.add_argument("--sequence", type=int, default=0, metavar="B",
                   help="which sequence of the batch the gate heatmaps show (default 0)")
    g = p.add_argument_group("adding problem (target 'adding')")
    g.add_argument("--cells", default="rnn_tanh,lstm,gru",
                   help="comma-separated layer names (default rnn_tanh,lstm,gru)")
    g.add_argument("--T", type=int, default=100, help="sequence length (default 100)")
    g.add_argument("--steps", type=int, default=3000, help="training steps per cell (default 3000)")
    g.add_argument("--snapshots", type=_csv_ints, metavar="S1,S2",
                   help="steps at which to measure the gradient flow (default 0,STEPS)")
    g.add_argument("--hidden", type=int, default=128, help="hidden size (default 128)")
    g.add_argument("--batch", type=int, default=50, help="training batch (default 50)")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 0.001)")
    g.add_argument(
        "--clip", type=float, default=1.0, help="max gradient norm, 0 = none (default 1)"
    )
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_explain)
    return p


def _print_summary(report: dict, out: Path) -> None:
    if "cells" in report:  # adding study
        for cell, r in report["cells"].items():
            last = r["snapshots"][max(r["snapshots"])]["summary"]["h"]
            print(f"{cell}: test MSE {r['final_test_mse']:.4f}; ||dL/dh_0|| / ||dL/dh_T-1|| = "
                  f"10^{last['log10_first_over_last']:.1f} after training")
    else:
        for f in report["gradient_flow"]:
            s = f["summary"]["h"]
            print(f"{f['module']} layer {f['layer']} {f['direction']}: ||dL/dh_t|| from "
                  f"{s['last']:.3g} (last step) to {s['first']:.3g} (first step)")
    print(f"wrote {out / 'explain.json'}")


def cmd_explain(a: argparse.Namespace) -> int:
    from rnnkit.diagnostics.explain import explain_adding, explain_checkpoint, explain_recipe

    target = Path(a.target)
    if a.target == "adding":
        out = Path(a.out or "explain/adding")
        cells = tuple(c.strip() for c in a.cells.split(",") if c.strip())
        from rnnkit.layers import LAYERS

        unknown = [c for c in cells if c not in LAYERS]
        if unknown:
            raise ValueError(f"--cells: unknown {unknown}; expected names among {sorted(LAYERS)}")
        report = explain_adding(out, cells=cells, T=a.T, steps=a.steps, snapshots=a.snapshots,
                                hidden=a.hidden, batch=a.batch, lr=a.lr, clip=a.clip or None,
                                seed=a.seed)
    elif target.is_dir():
        if not (target / "config.json").is_file() and (target / "best" / "config.json").is_file():
            target = target / "best"  # a run directory: explain its best checkpoint
        out = Path(a.out or f"explain/{target.parent.name or target.name}")
        report = explain_checkpoint(target, out, data_dir=a.data_dir, sequence=a.sequence)
    elif target.suffix in (".yaml", ".yml"):
        out = Path(a.out or f"explain/{target.stem}")
        report = explain_recipe(target, out, overrides=a.set, data_dir=a.data_dir,
                                sequence=a.sequence)
    else:
        raise ValueError(f"explain: {a.target!r} is not a checkpoint directory, a .yaml recipe "
                         "or 'adding'")
    _print_summary(report, out)
    return 0
