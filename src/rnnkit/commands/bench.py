"""``rnnkit bench``: every cell x backend x shape against torch.nn.LSTM/GRU, side by side.

::

    rnnkit bench --quick                                   # ~1 min smoke run, prints the table
    rnnkit bench                                           # full grid (hours on 2 cores)
    rnnkit bench --cells gru,sru,indrnn --backends auto,fused,loop --shapes 32,1000,512
    rnnkit bench --shapes 32,100,128,256 --repeats 9 --out benchmarks/results/mine.json

Per row: forward ms, forward+backward ms (medians of interleaved repeats after
warm-up), peak MiB, and the ratio to ``torch.nn.LSTM`` and ``torch.nn.GRU`` at the
same B, T, I, H (below 1: faster). The machine line gives the device and the
library versions. Results go to ``benchmarks/results/bench_<device>.json`` (with
``--quick``: only with ``--out``); a long run saves after every shape, so an
interrupted run keeps what finished. See :mod:`rnnkit.bench.zoo`.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "add_arguments", "run", "format_table"]


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smoke run (~1 min): one small shape, "
                   "3 repeats; saves only with --out")
    p.add_argument("--cells", type=_names, metavar="A,B", help="subset of the cells (default: all; "
                   "see rnnkit.bench.zoo.ZOO_CELLS)")
    p.add_argument("--backends", type=_names, metavar="A,B",
                   help="subset of auto,torch,fused,loop (default auto,fused)")
    p.add_argument(
        "--shapes",
        metavar="B,T,H[;...]",
        help="shapes to run, ';'-separated, each "
        "B,T,H (I=128) or B,T,I,H (default: B in 1,32,128 x T in 100,1000 x H in 128,512)",
    )
    p.add_argument("--repeats", type=int, help="interleaved repeats, median reported (default 5)")
    p.add_argument("--warmup", type=int, help="untimed calls per contender first (default 1)")
    p.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="cpu (default on CPU: process CPU time, robust on a shared machine) or wall",
    )
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory calls")
    p.add_argument("--input-grad", action="store_true",
                   help="forward+backward also computes the input's gradient (a layer that is not "
                        "the first; default: only the weights', as for a first layer)")
    p.add_argument("--out", metavar="PATH", help="result JSON (default "
                   "benchmarks/results/bench_<device>.json)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` on the ``rnnkit`` sub-command parsers."""
    p = subparsers.add_parser("bench", help="time every cell x backend x shape against torch.nn",
                              description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def _settings(a: argparse.Namespace):
    from rnnkit.bench.zoo import QUICK_SHAPES, GridSettings, parse_shape

    kw: dict = {"device": a.device, "memory": not a.no_memory, "input_grad": a.input_grad,
                "clock": a.clock or ("cpu" if a.device == "cpu" else "wall")}
    if a.quick:
        kw.update(shapes=QUICK_SHAPES, repeats=3, warmup=1, min_sample_s=0.01, quick=True)
    if a.cells:
        kw["cells"] = a.cells
    if a.backends:
        kw["backends"] = a.backends
    if a.shapes:
        kw["shapes"] = tuple(parse_shape(s) for s in a.shapes.split(";") if s.strip())
    if a.repeats is not None:
        kw["repeats"] = a.repeats
    if a.warmup is not None:
        kw["warmup"] = a.warmup
    return GridSettings(**kw)


def _name(backend: str) -> str:
    """Today's name of a backend in a results file ("native" was torch's kernels' old name)."""
    return "torch" if backend == "native" else backend


def _ran(r: dict) -> str:
    """What ran: one backend, or ``inference/training`` where auto picks differently."""
    ran, fwd = _name(r["ran"]), _name(r.get("ran_forward", r["ran"]))
    return ran if fwd == ran else f"{fwd}/{ran}"


def format_table(doc: dict) -> str:
    """The rows as an aligned text table (times in ms, peak in MiB, ratios to torch.nn)."""
    head = ("shape", "cell", "backend", "ran", "fwd ms", "fwd/LSTM", "fwd/GRU", "f+b ms",
            "f+b/LSTM", "f+b/GRU", "f+b MiB")
    lines = [head]
    for r in doc["results"]:
        sh = r["shape"]
        f, fb = r["forward"], r["forward_backward"]
        mib = "-" if fb["peak_bytes"] is None else f"{fb['peak_bytes'] / 2**20:.1f}"
        lines.append((f"B={sh['B']} T={sh['T']} I={sh['I']} H={sh['H']}", r["cell"],
                      _name(r["backend"]), _ran(r), f"{f['median_ms']:.2f}",
                      f"{r['ratio_lstm']['forward']:.2f}", f"{r['ratio_gru']['forward']:.2f}",
                      f"{fb['median_ms']:.2f}", f"{r['ratio_lstm']['forward_backward']:.2f}",
                      f"{r['ratio_gru']['forward_backward']:.2f}", mib))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i < 4 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) for row in lines)


def machine_line(doc: dict) -> str:
    m = doc["machine"]
    return (f"{m['cpu']} ({m['device']}), {m.get('usable_cores')} cores usable, torch "
            f"{m['torch']} with {m['torch_threads']} thread(s), rnnkit {m['rnnkit']}, Python "
            f"{m['python']}; clock {doc['settings']['clock']}, median of "
            f"{doc['settings']['repeats']} repeats; load average {m.get('loadavg_start')}")


def run(a: argparse.Namespace) -> int:
    import torch

    from rnnkit.bench.zoo import run_grid

    if a.threads < 1:
        raise ValueError(f"--threads: expected a positive int, got {a.threads}")
    torch.set_num_threads(a.threads)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device: {a.device!r} requested but torch sees no CUDA device")
    s = _settings(a)
    path = (
        Path(a.out)
        if a.out
        else (
            None
            if s.quick
            else Path("benchmarks") / "results" / f"bench_{a.device.split(':')[0]}.json"
        )
    )
    command = shlex.join(["rnnkit", "bench", *sys.argv[2:]]) if sys.argv[1:2] == ["bench"] \
        else None

    def save(doc: dict) -> None:
        doc["command"] = command
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc, indent=1) + "\n")

    def progress(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    doc = run_grid(s, progress=progress, on_shape=save)
    print(format_table(doc))
    print(machine_line(doc))
    if path is not None:
        print(f"saved {path}")
    return 0
