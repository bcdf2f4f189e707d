"""Per-step latency of streaming inference at B=1: ``layer.step`` vs torch.nn on one step.

For each cell, one time step of a ``num_layers``-layer stack (I=128, H=256 by default),
batch 1, evaluation mode, no grad, float32, one thread: ``rnnkit.<Cell>.step(x_t, state)``
against ``torch.nn.LSTM(x_t[None], state)`` (and torch.nn.GRU), interleaved, process CPU
time, median of repeats (:func:`rnnkit.bench.measure.interleave`).

Usage::

    python benchmarks/bench_streaming.py --repeats 21 --json benchmarks/results/streaming_cpu.json
"""
from __future__ import annotations

import argparse
import json

import torch

import rnnkit
from rnnkit.bench.machine import machine_info
from rnnkit.bench.measure import Task, interleave, summarize

CELLS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "ln_lstm": rnnkit.LayerNormLSTM,
         "indrnn": rnnkit.IndRNN, "sru": rnnkit.SRU, "mingru": rnnkit.MinGRU}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    I, H, L = a.input, a.hidden, a.layers
    x = torch.randn(1, I)
    tasks = {}
    for name, cls in (("torch.nn.LSTM", torch.nn.LSTM), ("torch.nn.GRU", torch.nn.GRU)):
        m = cls(I, H, L).eval()
        st = (torch.zeros(L, 1, H), torch.zeros(L, 1, H)) if name.endswith("LSTM") \
            else torch.zeros(L, 1, H)
        tasks[name] = Task(lambda m=m, st=st: m(x.unsqueeze(0), st))
    for name, cls in CELLS.items():
        m = cls(I, H, L).eval()
        st = m.init_state(1)
        tasks[f"rnnkit.{name}.step"] = Task(lambda m=m, st=st: m.step(x, st))
    with torch.no_grad():
        res = interleave(tasks, repeats=a.repeats, warmup=20, min_sample_s=0.05, clock="cpu")
    base = summarize(res["torch.nn.LSTM"]["samples_ms"])["median_ms"]
    rows = []
    for name, r in res.items():
        s = summarize(r["samples_ms"])
        rows.append({"name": name, "median_us": 1e3 * s["median_ms"], "p25_us": 1e3 * s["p25_ms"],
                     "p75_us": 1e3 * s["p75_ms"], "ratio_to_torch_lstm": s["median_ms"] / base})
        print(f"{name:24s} {1e3 * s['median_ms']:8.1f} us [{1e3 * s['p25_ms']:.1f}, "
              f"{1e3 * s['p75_ms']:.1f}]  x{s['median_ms'] / base:.2f} of torch.nn.LSTM")
    if a.json:
        doc = {"suite": "streaming_step", "machine": machine_info("cpu"),
               "settings": vars(a) | {"batch": 1, "clock": "cpu"}, "results": rows}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
