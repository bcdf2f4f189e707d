"""Command line of the core-layer benchmark (``benchmarks/bench_layers.py``).

::

    python benchmarks/bench_layers.py                 # full run, saves
                                                      # benchmarks/results/core_layers_cpu.json
    python benchmarks/bench_layers.py --quick         # smoke run (~1 min on 2 cores), saves nothing
    python benchmarks/bench_layers.py --cells lstm --shape 32,100,128,256 --repeats 21
    python benchmarks/bench_layers.py --compare run1.json run2.json

``add_arguments`` and ``run`` are separate from ``main`` so that a ``rnnkit bench``
subcommand can reuse them as they are.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "main", "default_out"]


def _shape(text: str):
    from rnnkit.bench.layers import Shape

    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
        if len(values) != 4:
            raise ValueError
        return Shape(*values)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected B,T,I,H as four positive integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 repeats, 1 warm-up, T divided by 10; saves only with --out")
    p.add_argument("--repeats", type=int, help="interleaved repeats per measurement "
                   "(default 11; 3 with --quick); the median is reported")
    p.add_argument("--warmup", type=int, help="untimed calls per contender first (default 2)")
    p.add_argument("--min-sample-ms", type=float, metavar="MS",
                   help="calls per sample are calibrated to last at least this long (default 50)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time (default); cpu: this process's CPU time, which "
                   "leaves out waiting for a core on a shared machine (use with --threads 1)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--dtype", default="float32", help="parameter and input dtype (default float32)")
    p.add_argument("--cells", type=_names, metavar="A,B", help="subset of rnn_tanh,lstm,gru")
    p.add_argument("--contenders", type=_names, metavar="A,B",
                   help="subset of torch.nn,torch.nn-copy,rnnkit-auto,rnnkit-loop (torch.nn is "
                   "required; torch.nn-copy is the A/A control)")
    p.add_argument("--shape", type=_shape, action="append", metavar="B,T,I,H",
                   help="benchmark this shape instead of the defaults (repeatable)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory calls")
    p.add_argument("--out", metavar="PATH", help="result JSON (default "
                   "benchmarks/results/core_layers_<device>.json; none for --quick)")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                   help="print two saved runs' ratios side by side instead of running")


def default_out(device: str) -> Path:
    return Path("benchmarks") / "results" / f"core_layers_{device.split(':')[0]}.json"


def _settings(a: argparse.Namespace):
    from rnnkit.bench.layers import Settings, quick_settings

    kw = {"device": a.device, "dtype": a.dtype, "memory": not a.no_memory, "clock": a.clock}
    for key in ("repeats", "warmup"):
        if getattr(a, key) is not None:
            kw[key] = getattr(a, key)
    if a.min_sample_ms is not None:
        kw["min_sample_s"] = a.min_sample_ms / 1e3
    if a.cells:
        kw["cells"] = a.cells
    if a.contenders:
        kw["contenders"] = a.contenders
    if a.shape:
        kw["shapes"] = tuple(a.shape)
    return quick_settings(**kw) if a.quick else Settings(**kw)


def run(a: argparse.Namespace, command: str | None = None) -> int:
    """Run (or compare) as the parsed arguments say; prints tables, saves JSON."""
    import torch
    from rich.console import Console

    from rnnkit.bench import report
    from rnnkit.bench.layers import run_suite

    out = Console(width=max(Console().width, 160))  # the table is wide; never wrap its rows
    if a.compare:
        docs = [report.load(p) for p in a.compare]
        out.print(report.compare_table(*docs))
        for p, d in zip(a.compare, docs):
            out.print(f"{p}: {report.machine_line(d)}")
        return 0
    if a.threads is not None:
        if a.threads < 1:
            raise ValueError(f"--threads: expected a positive int, got {a.threads}")
        torch.set_num_threads(a.threads)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device: {a.device!r} requested but torch sees no CUDA device")
    settings = _settings(a)
    err = Console(stderr=True)
    with err.status("benchmarking") as status:
        doc = run_suite(settings, progress=lambda msg: status.update(msg))
    argv = (["python"] if sys.argv[0].endswith(".py") else []) + sys.argv
    doc["command"] = command or shlex.join(argv)
    out.print(report.rich_table(doc))
    out.print(report.machine_line(doc))
    met, worst = report.target_check(doc)
    if worst is not None:
        ratio, cell, label, measure = worst
        out.print(f"target rnnkit-auto <= 1.05 x torch.nn: {'met' if met else 'NOT met'} "
                  f"(worst {ratio:.3f}: {cell} {label} {measure})")
    floor = report.noise_floor(doc)
    if floor is not None:
        out.print(f"noise floor: the A/A control torch.nn-copy is off by up to {100 * floor:.1f}%")
    if a.markdown:
        print(report.markdown_table(doc))
    path = a.out or (None if a.quick else default_out(settings.device))
    if path is not None:
        out.print(f"saved {report.save(doc, path)}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Time and measure rnnkit.RNN/LSTM/GRU (auto and loop backends) "
        "against torch.nn, side by side.")
    add_arguments(parser)
    a = parser.parse_args(argv)
    try:
        return run(a)
    except ValueError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
