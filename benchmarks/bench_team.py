"""Inference at a few rows: the compiled loops on a team of threads against the one-loop path.

At B rows with 2+ threads, the GRU, LayerNorm-GRU and LayerNorm-LSTM inference loops run on a
team of threads, each owning a slice of the hidden units (``team_size()`` in
``kernels/compiled/scans.h``). This times, for each B, a ``--layers``-layer stack (I=128,
H=256, T=100, eval, no grad, float32) with the team (``set_team_rows(64)``) and without it
(``set_team_rows(0)``) beside ``torch.nn.LSTM``, in one process, interleaved, median of
repeats, wall clock; the rule each cell's row limit rests on.

Usage::

    python benchmarks/bench_team.py --threads 2 --batch 1,2,4,8 \\
        --json benchmarks/results/streaming_team_xeon2_s11.json
    python benchmarks/bench_team.py --threads 2,4 --cells gru,ln_gru
"""
from __future__ import annotations

import argparse
import json

import torch

import rnnkit
from rnnkit.bench.machine import machine_info
from rnnkit.bench.measure import Task, interleave, summarize
from rnnkit.kernels import compiled
from rnnkit.runtime import tune_malloc

CELLS = {"gru": rnnkit.GRU, "ln_gru": rnnkit.LayerNormGRU, "ln_lstm": rnnkit.LayerNormLSTM}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq", type=int, default=100)
    ap.add_argument("--batch", default="1,2,4,8")
    ap.add_argument("--threads", default=str(torch.get_num_threads()))
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--cells", default=",".join(CELLS), help="comma-separated, of: " + ", ".join(CELLS))
    ap.add_argument("--json")
    a = ap.parse_args()
    tune_malloc()  # as the rnnkit command does: freed buffers stay in the process
    ext = compiled.ext()
    if ext is None:
        raise SystemExit("the compiled loops are not available (RNNKIT_COMPILED_SCANS=0 or no "
                         "compiler): nothing to compare")
    kept = ext.team_rows()
    cells = {c: CELLS[c] for c in a.cells.split(",")}  # (KeyError: an unknown cell)
    I, H, L, T = a.input, a.hidden, a.layers, a.seq
    rows = []

    def run(m, xs, team):
        ext.set_team_rows(64 if team else 0)
        return m(xs)

    try:
        for n in (int(t) for t in a.threads.split(",")):
            torch.set_num_threads(n)
            for B in (int(b) for b in a.batch.split(",")):
                torch.manual_seed(0)
                xs = torch.randn(T, B, I)
                ref = torch.nn.LSTM(I, H, L).eval()
                tasks = {"torch.nn.LSTM": Task(lambda m=ref, xs=xs: m(xs))}
                for name, cls in cells.items():
                    m = cls(I, H, L).eval()
                    tasks[f"{name} serial"] = Task(lambda m=m, xs=xs: run(m, xs, False))
                    tasks[f"{name} team"] = Task(lambda m=m, xs=xs: run(m, xs, True))
                with torch.no_grad():
                    res = interleave(tasks, repeats=a.repeats, warmup=10, min_sample_s=0.05,
                                     clock="wall")
                base = summarize(res["torch.nn.LSTM"]["samples_ms"])["median_ms"]
                for name, r in res.items():
                    s = summarize(r["samples_ms"])
                    rows.append({"threads": n, "batch": B, "name": name,
                                 "per_step_us": 1e3 * s["median_ms"] / T,
                                 "p25_us": 1e3 * s["p25_ms"] / T, "p75_us": 1e3 * s["p75_ms"] / T,
                                 "ratio_to_torch_lstm": s["median_ms"] / base})
                    print(f"threads={n} B={B} {name:16s} {1e3 * s['median_ms'] / T:7.1f} us/step"
                          f"  x{s['median_ms'] / base:.3f} of torch.nn.LSTM", flush=True)
    finally:
        ext.set_team_rows(kept)
    if a.json:
        doc = {"suite": "streaming_team", "machine": machine_info("cpu"), "settings": vars(a),
               "results": rows}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
