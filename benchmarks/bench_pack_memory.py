"""Peak memory (and speed) of the compiled time loops with MKL's packed weights, against the
Python loop.

MKL's packed form of a weight is about 7.3 MB plus twice the weight, alive while a loop runs
(docs/kernels.md, "Memory"); since session 13 a training loop packs only where that has room
under the Python loop's peak (``pack_fits()`` in ``kernels/compiled/scans.h``). Per shape and
fused cell family, one forward+backward (``layer(x)[0].backward(g)``, weights' gradients),
its peak from torch's profiler (:func:`rnnkit.bench.measure.peak_bytes`) in four modes:

- ``loop``: the fused scan's Python loop (``compiled.disabled()``), the issue's "today";
- ``compiled``: the compiled loop as it runs by default (packing by size);
- ``compiled, packed always``: packing every loop (``set_pack_by_size(False)``, as before);
- ``compiled, unpacked``: no packed weights at all (``set_packed(False)``).

With ``--time``, the wall-clock forward+backward of ``compiled`` against ``compiled, packed
always`` (and torch.nn.LSTM/GRU), side by side in one process, median of interleaved rounds.

Usage::

    python benchmarks/bench_pack_memory.py --threads 2,1 --time --rounds 9 \\
        --json benchmarks/results/memory_cpu_xeon2_s13.json
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from rnnkit.bench.machine import cpu_model
from rnnkit.bench.measure import Task, peak_bytes
from rnnkit.bench.zoo import PACKED_LOOP_CELLS, make_layer
from rnnkit.kernels import compiled
from rnnkit.runtime import tune_malloc

CELLS = {c: functools.partial(make_layer, c, backend="fused") for c in PACKED_LOOP_CELLS}
MODES = ("loop", "compiled", "compiled, packed always", "compiled, unpacked")


@contextlib.contextmanager
def mode(name: str):
    """Run the fused layers as ``name`` (one of MODES) within the block."""
    ext = compiled.ext()
    ext.set_packed(name != "compiled, unpacked")
    ext.set_pack_by_size(name != "compiled, packed always")
    try:
        with compiled.disabled() if name == "loop" else contextlib.nullcontext():
            yield
    finally:
        ext.set_packed(True)
        ext.set_pack_by_size(True)


def fwd_bwd(mod, x, g, name: str | None) -> None:
    with mode(name) if name else contextlib.nullcontext():
        mod(x)[0].backward(g)


def peaks(B: int, T: int, I: int, H: int, cells: list[str]) -> dict:
    torch.manual_seed(0)
    x, g = torch.randn(T, B, I), torch.randn(T, B, H)
    out = {}
    for c in cells:
        mod = CELLS[c](I, H)
        row = {}
        for name in MODES:
            task = Task(run=lambda mod=mod, name=name: fwd_bwd(mod, x, g, name),
                        setup=lambda mod=mod: mod.zero_grad(set_to_none=True))
            task.setup()
            task.run()  # warm-up (the extension's first load, the allocator)
            row[name] = round(peak_bytes(task) / 2**20, 2)
        out[c] = row
        print(f"  {c:18s} " + "  ".join(f"{k}: {v:7.2f}" for k, v in row.items()) + "  MiB",
              flush=True)
    return out


def times(B: int, T: int, I: int, H: int, cells: list[str], rounds: int) -> dict:
    torch.manual_seed(0)
    x, g = torch.randn(T, B, I), torch.randn(T, B, H)
    runs = {"torch.nn.LSTM": (torch.nn.LSTM(I, H), None),
            "torch.nn.GRU": (torch.nn.GRU(I, H), None)}
    for c in cells:
        mod = CELLS[c](I, H)
        runs[f"{c} compiled"] = (mod, "compiled")
        runs[f"{c} compiled, packed always"] = (mod, "compiled, packed always")
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for mod, name in runs.values():  # warm-up
        for _ in range(2):
            mod.zero_grad(set_to_none=True)
            fwd_bwd(mod, x, g, name)
    keys = list(runs)
    for r in range(rounds):
        k0 = r % len(keys)  # rotate the order
        for k in keys[k0:] + keys[:k0]:
            mod, name = runs[k]
            mod.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            fwd_bwd(mod, x, g, name)
            samples[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    lstm = med["torch.nn.LSTM"]
    return {"ms": {k: round(v, 2) for k, v in med.items()},
            "ms_all": {k: [round(t * 1e3, 2) for t in v] for k, v in samples.items()},
            "over_torch_lstm": {k: round(v / lstm, 3) for k, v in med.items()},
            "by_size_over_always": {c: round(med[f"{c} compiled"]
                                             / med[f"{c} compiled, packed always"], 3)
                                    for c in cells}}



def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="2", help="thread counts, in order")
    ap.add_argument("--shapes", default="32,100,128,256;128,100,128,512", help="B,T,I,H;...")
    ap.add_argument("--cells", default=",".join(CELLS), help=f"of {','.join(CELLS)}")
    ap.add_argument("--time", action="store_true",
                    help="also time compiled (packing by size) against packing always")
    ap.add_argument("--time-shapes", default=None,
                    help="the shapes to time (default: --shapes)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--append", action="store_true",
                    help="add this run's results to the --json file's")
    a = ap.parse_args(argv)
    os.environ["RNNKIT_COMPILED_SCANS"] = "1"
    tune_malloc()
    assert compiled.ext() is not None, "the extension did not build"
    cells = a.cells.split(",")
    argv_ = sys.argv[1:] if argv is None else argv
    out = {"command": "python benchmarks/bench_pack_memory.py " + " ".join(argv_),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
                       "malloc_tuned": True},
           "torch": torch.__version__,
           "memory": "peak bytes above the call's start of one forward+backward (weights' "
                     "gradients), torch's profiler (rnnkit.bench.measure.peak_bytes), MiB",
           "clock": "wall (time.perf_counter), median of interleaved rounds",
           "load_before": os.getloadavg(), "runs": []}
    shape_list = [tuple(int(v) for v in s.split(",")) for s in a.shapes.split(";")]
    timed = shape_list if a.time_shapes is None else [
        tuple(int(v) for v in s.split(",")) for s in a.time_shapes.split(";")]
    for n in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(n)
        for B, T, I, H in shape_list:
            print(f"threads={n} B={B} T={T} I={I} H={H}", flush=True)
            run = {"threads": n, "shape": dict(B=B, T=T, I=I, H=H)}
            if not a.no_memory:
                run["peak_mib"] = peaks(B, T, I, H, cells)
            if a.time and (B, T, I, H) in timed:
                run["time"] = times(B, T, I, H, cells, a.rounds)
                for c, v in run["time"]["by_size_over_always"].items():
                    print(f"  {c:18s} compiled {run['time']['over_torch_lstm'][c + ' compiled']:.3f}"
                          f" / packed always "
                          f"{run['time']['over_torch_lstm'][c + ' compiled, packed always']:.3f}"
                          f" x torch.nn.LSTM (ratio {v:.3f})", flush=True)
            out["runs"].append(run)
    out["load_after"] = os.getloadavg()
    if a.json and a.append and a.json.exists():
        old = json.loads(a.json.read_text())  # (later runs: their command, date, load)
        old.setdefault("appended", []).append(
            {k: out[k] for k in ("command", "date", "load_before", "load_after")})
        old["runs"] += out["runs"]
        out = old
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
