"""``rnnkit bench``: every cell x backend x shape against torch.nn.LSTM/GRU, side by side.

::

    rnnkit bench --quick                                   # smoke run (2-3 min, 2-core Xeon VM)
    rnnkit bench --quick --threads 1,2                     # ... at 1 and 2 threads: scaling
    rnnkit bench                                           # full grid (hours on 2 cores)
    rnnkit bench --cells gru,sru,indrnn --backends auto,fused,loop --shapes 32,1000,512
    rnnkit bench --shapes 32,100,128,256 --threads 1,4,16 --out benchmarks/results/mine.json
    rnnkit bench --compare run1.json run2.json             # two saved runs side by side

Times are wall clock at torch's default thread count unless ``--clock cpu`` (process CPU
time: steadier on a shared machine, but not what users wait for) or ``--threads`` says
otherwise. Per row: forward ms, forward+backward ms (medians of interleaved repeats after
warm-up), peak MiB, and the ratio to ``torch.nn.LSTM`` and ``torch.nn.GRU`` at the same
B, T, I, H and thread count (below 1: faster). With several thread counts a second table
gives each contender's thread scaling (time at the first count / time at N) beside
torch.nn.LSTM's. Results go to ``benchmarks/results/bench_<device>.json`` (with
``--quick``: only with ``--out``), naming the machine, threads, torch version, clock and
command; a long run saves after every shape. See :mod:`rnnkit.bench.zoo`.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "add_arguments", "run"]


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smoke run: one small shape, "
                   "3 repeats; saves only with --out")
    p.add_argument("--cells", type=_names, metavar="A,B", help="subset of the cells (default: "
                   "all but s6, whose memory the default grid's largest shape exceeds, and the "
                   "one-block stacks griffin, mamba, xlstm (mLSTM), xlstm_slstm and deep_lru, "
                   "which run when named; see rnnkit.bench.zoo.ZOO_CELLS)")
    p.add_argument("--backends", type=_names, metavar="A,B",
                   help="subset of auto,torch,fused,loop (default auto,fused)")
    p.add_argument("--shapes", metavar="B,T,H[;...]", help="shapes to run, ';'-separated, each "
                   "B,T,H (I=128) or B,T,I,H (default: B in 1,32,128 x T in 100,1000 x H in "
                   "128,512)")
    p.add_argument("--threads", metavar="N[,N...]", help="torch intra-op thread counts to sweep, "
                   "e.g. 1,2,4 (default: torch's default count); with several, each cell's "
                   "thread scaling is shown beside torch.nn.LSTM's")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time, what users see (default); cpu: this process's CPU "
                   "time, for noisy machines (summed over threads: no measure of scaling)")
    p.add_argument("--repeats", type=int, help="interleaved repeats, median reported (default 5)")
    p.add_argument("--warmup", type=int, help="untimed calls per contender first (default 1)")
    p.add_argument("--min-sample-ms", type=float, metavar="MS", help="calls per sample are "
                   "calibrated to last at least this long (default 50)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--dtype", default="float32", help="parameter and input dtype (default float32)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory calls")
    p.add_argument("--input-grad", action="store_true",
                   help="forward+backward also computes the input's gradient (a layer that is not "
                        "the first; default: only the weights', as for a first layer)")
    p.add_argument("--control", action="store_true", help="add an A/A control (a second "
                   "torch.nn.LSTM): its distance from 1.00 is the noise floor of the ratios")
    p.add_argument("--markdown", action="store_true", help="also print the tables as Markdown")
    p.add_argument("--out", metavar="PATH", help="result JSON (default "
                   "benchmarks/results/bench_<device>.json)")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                   help="print two saved runs' ratios side by side instead of running")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` on the ``rnnkit`` sub-command parsers."""
    p = subparsers.add_parser("bench", help="time every cell x backend x shape against torch.nn",
                              description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def _settings(a: argparse.Namespace):
    from rnnkit.bench.zoo import QUICK_SHAPES, GridSettings, parse_shape, parse_threads

    kw: dict = {"device": a.device, "dtype": a.dtype, "memory": not a.no_memory,
                "input_grad": a.input_grad, "clock": a.clock, "control": a.control}
    if a.quick:
        kw.update(shapes=QUICK_SHAPES, repeats=3, warmup=1, min_sample_s=0.01, quick=True)
    if a.threads is not None:
        kw["threads"] = parse_threads(a.threads)
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
    if a.min_sample_ms is not None:
        kw["min_sample_s"] = a.min_sample_ms / 1e3
    return GridSettings(**kw)


def _command(a: argparse.Namespace) -> str:
    """The command line that ran: argv under ``rnnkit bench``, else rebuilt from ``a``."""
    if sys.argv[1:2] == ["bench"]:
        return shlex.join(["rnnkit", "bench", *sys.argv[2:]])
    words = ["rnnkit", "bench"]
    for key, value in vars(a).items():
        if key == "func" or value in (None, False) or (key, value) in (
                ("clock", "wall"), ("device", "cpu"), ("dtype", "float32")):
            continue
        words.append("--" + key.replace("_", "-"))
        if value is not True:
            words += [",".join(value) if isinstance(value, tuple) else str(value)]
    return shlex.join(words)


def _compare(paths: list[str]) -> int:
    from rnnkit.bench import report

    print(report.compare_table(*(report.load(p) for p in paths)))
    return 0


def run(a: argparse.Namespace) -> int:
    import torch

    from rnnkit.bench import report
    from rnnkit.bench.zoo import run_grid

    if a.compare:
        return _compare(a.compare)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device: {a.device!r} requested but torch sees no CUDA device")
    s = _settings(a)
    path = Path(a.out) if a.out else None if s.quick else (
        Path("benchmarks") / "results" / f"bench_{a.device.split(':')[0]}.json")
    command = _command(a)

    def save(doc: dict) -> None:
        doc["command"] = command
        if path is not None:
            report.save(doc, path)

    def progress(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    doc = run_grid(s, progress=progress, on_shape=save)
    print(report.format_table(doc))
    if scaling := report.format_scaling(doc):
        print("\n" + scaling)
    print("\n" + report.machine_line(doc))
    floor = report.noise_floor(doc)
    if floor is not None:
        print(f"noise floor: the A/A control (a second torch.nn.LSTM) is off by up to "
              f"{100 * floor:.1f}%")
    if a.markdown:
        print("\n" + report.markdown_table(doc))
        if md := report.markdown_scaling(doc):
            print("\n" + md)
    if path is not None:
        print(f"saved {path}")
    return 0
