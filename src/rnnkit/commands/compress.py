"""``rnnkit prune`` and ``rnnkit quantize``: compress a checkpoint and measure what it costs.

::

    rnnkit prune CKPT --amounts 0.5,0.7,0.9 [--scope global,layer] [--finetune-steps N]
                 [--linear] [--split valid] [--out DIR] [--save] [--set key=value] [--data-dir DIR]
    rnnkit quantize CKPT [--split valid] [--repeats 3] [--out DIR] [--set key=value]
                    [--data-dir DIR]

``prune`` prints the sparsity-vs-metric table and writes ``DIR/pruning.json`` and
``DIR/pruning.md`` (with ``--save``, each fine-tuned model as ``DIR/<scope>-<amount>/``, an
ordinary checkpoint).  ``quantize`` compares the float model with its dynamic-int8 version on
CPU (metric, size, time) and writes ``DIR/quantize.json`` and ``DIR/quantize.md``.  Both rebuild
the checkpoint's data from its recipe (``--data-dir`` where the data lives).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_parser"]


def _floats(text: str) -> list[float]:
    """``--amounts``: comma-separated numbers (checked to be fractions in (0, 1) by ``_prune``)."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated fractions in (0, 1), got {text!r}"
        ) from None


def _scopes(text: str) -> list[str]:
    out = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in out if s not in ("global", "layer")]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"expected global, layer or global,layer; got {text!r}")
    return out


def _prune(a: argparse.Namespace) -> int:
    from rich.console import Console

    from rnnkit.compress.study import prune_table, table_markdown

    if a.save and not a.out:
        raise ValueError("--save: saves each pruned model under --out DIR; give --out")
    console = Console(stderr=True, highlight=False)
    if not a.amounts:
        raise ValueError("--amounts: empty; expected at least one fraction in (0, 1)")
    for x in a.amounts:
        if not 0.0 < x < 1.0:
            raise ValueError(f"--amounts: {x} is not a fraction in (0, 1)")
    if a.finetune_steps < 0:
        raise ValueError(f"--finetune-steps {a.finetune_steps}: expected >= 0")
    rows = prune_table(
        a.checkpoint,
        a.amounts,
        scopes=a.scope,
        finetune_steps=a.finetune_steps,
        split=a.split,
        linear=a.linear,
        lr_scale=a.finetune_lr_scale,
        data_dir=a.data_dir,
        overrides=a.set,
        save_dir=a.out if a.save else None,
        log=console.print,
    )
    md = table_markdown(rows)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "pruning.json").write_text(json.dumps({"checkpoint": a.checkpoint, "split": a.split,
                                                      "rows": rows}, indent=1) + "\n")
        (out / "pruning.md").write_text(md)
    print(md, end="")
    return 0


def _quantize(a: argparse.Namespace) -> int:
    from rich.console import Console

    from rnnkit.compress.study import quantize_report

    console = Console(stderr=True, highlight=False)
    if a.repeats < 1:
        raise ValueError(f"--repeats {a.repeats}: expected a positive integer")
    rep = quantize_report(
        a.checkpoint,
        split=a.split,
        repeats=a.repeats,
        linear=not a.no_linear,
        data_dir=a.data_dir,
        overrides=a.set,
        threads=a.threads,
        log=console.print,
    )
    key, med = rep["metric"], rep["cpu_seconds_median"]
    lines = [
        "| model | " + key + " | size (MB) | " + " | ".join(f"{w} (CPU s)" for w in med) + " |",
        "|---|---:|---:|" + "---:|" * len(med),
    ]
    for k in ("float", "float_no_onednn", "float_torch_nn", "int8"):
        if k not in rep["metrics"] and not any(k in m for m in med.values()):
            continue
        metric = f"{rep['metrics'][k][key]:.4f}" if k in rep["metrics"] else "(float)"
        size = f"{rep['bytes'][k] / 1e6:.2f}" if k in rep["bytes"] else "-"
        secs = " | ".join(f"{m[k]:.3f}" if k in m else "-" for m in med.values())
        lines.append(f"| {k} | {metric} | {size} | {secs} |")
    md = "\n".join(lines) + "\n"
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "quantize.json").write_text(json.dumps(rep, indent=1) + "\n")
        (out / "quantize.md").write_text(md)
    print(md, end="")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory (a run's best/ or last/)")
    p.add_argument("--split", default="valid", help="split to measure on (default valid)")
    p.add_argument("--out", metavar="DIR", help="write the table (JSON and markdown) here")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the checkpoint's recipe, e.g. data.eval_batch_size=16 (repeatable)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="where the checkpoint's data lives")


def add_parser(subparsers) -> None:
    """Add ``prune`` and ``quantize`` to an ``argparse`` sub-parser set."""
    h = (
        "magnitude-prune a checkpoint's recurrent weights, fine-tune, and tabulate sparsity vs "
        "metric"
    )
    p = subparsers.add_parser("prune", help=h, description=h[0].upper() + h[1:] + ".")
    _common(p)
    p.add_argument("--amounts", type=_floats, default=[0.5, 0.7, 0.9], metavar="A,B,...",
                   help="fractions of the weights to prune (default 0.5,0.7,0.9)")
    p.add_argument(
        "--scope",
        type=_scopes,
        default=["global"],
        metavar="global|layer",
        help="one magnitude threshold over all weights (global) or the same fraction per "
        "weight tensor (layer); both: global,layer",
    )
    p.add_argument("--finetune-steps", type=int, default=0, metavar="N",
                   help="optimizer steps of fine-tuning after pruning (default 0)")
    p.add_argument("--finetune-lr-scale", type=float, default=0.3, metavar="S",
                   help="fine-tuning learning rate = recipe lr x S (default 0.3)")
    p.add_argument(
        "--linear", action="store_true", help="also prune nn.Linear weights (heads, decoder)"
    )
    p.add_argument("--save", action="store_true",
                   help="save each pruned model under --out (which it requires)")
    p.set_defaults(func=_prune)

    h = "dynamic int8 quantisation for CPU: metric change, size and measured speed-up"
    q = subparsers.add_parser("quantize", help=h, description=h[0].upper() + h[1:] + ".")
    _common(q)
    q.add_argument("--repeats", type=int, default=3, metavar="N", help="timed repeats (default 3)")
    q.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads (default 1)")
    q.add_argument("--no-linear", action="store_true", help="keep nn.Linear layers in float")
    q.set_defaults(func=_quantize)
