"""Inference at B=1: per-step time of ``layer.step`` and of a whole sequence, against torch.nn.

For each cell, a ``num_layers``-layer stack (I=128, H=256 by default), batch 1, evaluation
mode, no grad, float32:

- **step**: one time step, ``rnnkit.<Cell>.step(x_t, state)`` against
  ``torch.nn.LSTM(x_t[None], state)`` (and torch.nn.GRU) on one step;
- **seq**: a whole ``--seq``-step sequence in one call, ``layer(x)`` against
  ``torch.nn.LSTM(x)``, reported per step.

Interleaved, median of repeats (:func:`rnnkit.bench.measure.interleave`), wall clock by
default (``--clock cpu``: process CPU time, for a noisy machine), at each of ``--threads``
(default: torch's default count).

Usage::

    python benchmarks/bench_streaming.py --threads 1,2 --repeats 21 \\
        --json benchmarks/results/streaming_cpu_xeon2.json
"""
from __future__ import annotations

import argparse
import json

import torch

import rnnkit
from rnnkit.bench.machine import machine_info
from rnnkit.bench.measure import Task, interleave, summarize
from rnnkit.runtime import tune_malloc

CELLS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "ln_lstm": rnnkit.LayerNormLSTM,
         "ln_gru": rnnkit.LayerNormGRU, "indrnn": rnnkit.IndRNN, "sru": rnnkit.SRU,
         "mingru": rnnkit.MinGRU}


def _unpadded(f):
    """f with the compiled loops' copy of W^T unpadded (``set_pad_rows(False)``), for A/B."""
    from rnnkit.kernels import compiled

    def run():
        ext = compiled.ext()
        ext.set_pad_rows(False)
        try:
            return f()
        finally:
            ext.set_pad_rows(True)
    return run


def _tasks(I: int, H: int, L: int, T: int, unpadded: bool = False
           ) -> dict[str, tuple[Task, int]]:
    """name -> (task, steps per call)."""
    x, xs = torch.randn(1, I), torch.randn(T, 1, I)
    tasks = {}
    for name, cls in (("torch.nn.LSTM", torch.nn.LSTM), ("torch.nn.GRU", torch.nn.GRU)):
        m = cls(I, H, L).eval()
        st = (torch.zeros(L, 1, H), torch.zeros(L, 1, H)) if name.endswith("LSTM") \
            else torch.zeros(L, 1, H)
        tasks[f"{name} step"] = (Task(lambda m=m, st=st: m(x.unsqueeze(0), st)), 1)
        tasks[f"{name} seq"] = (Task(lambda m=m: m(xs)), T)
    for name, cls in CELLS.items():
        m = cls(I, H, L).eval()
        st = m.init_state(1)
        tasks[f"rnnkit.{name} step"] = (Task(lambda m=m, st=st: m.step(x, st)), 1)
        tasks[f"rnnkit.{name} seq"] = (Task(lambda m=m: m(xs)), T)
        if unpadded and name == "ln_lstm":  # (the LayerNorm-LSTM: where padding mattered)
            tasks[f"rnnkit.{name} unpadded seq"] = (Task(_unpadded(lambda m=m: m(xs))), T)
    return tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq", type=int, default=100, help="steps of the whole-sequence call")
    ap.add_argument("--threads", default=str(torch.get_num_threads()))
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--unpadded", action="store_true",
                    help="also time the LayerNorm-LSTM's whole sequence with W^T's copy unpadded "
                         "(A/B)")
    ap.add_argument("--json")
    a = ap.parse_args()
    tune_malloc()  # as the rnnkit command does: freed buffers stay in the process
    rows = []
    for n in (int(t) for t in a.threads.split(",")):
        torch.set_num_threads(n)
        torch.manual_seed(0)
        tasks = _tasks(a.input, a.hidden, a.layers, a.seq, a.unpadded)
        with torch.no_grad():
            res = interleave({k: t for k, (t, _) in tasks.items()}, repeats=a.repeats,
                             warmup=20, min_sample_s=0.05, clock=a.clock)
        per = {k: summarize([v / tasks[k][1] for v in r["samples_ms"]]) for k, r in res.items()}
        for mode in ("step", "seq"):
            base = per[f"torch.nn.LSTM {mode}"]["median_ms"]
            for name, s in per.items():
                if not name.endswith(mode):
                    continue
                rows.append({"threads": n, "mode": mode, "name": name,
                             "per_step_us": 1e3 * s["median_ms"], "p25_us": 1e3 * s["p25_ms"],
                             "p75_us": 1e3 * s["p75_ms"],
                             "ratio_to_torch_lstm": s["median_ms"] / base})
                print(f"threads={n} {name:24s} {1e3 * s['median_ms']:8.1f} us/step "
                      f"[{1e3 * s['p25_ms']:.1f}, {1e3 * s['p75_ms']:.1f}]  "
                      f"x{s['median_ms'] / base:.2f} of torch.nn.LSTM {mode}")
    if a.json:
        doc = {"suite": "streaming", "machine": machine_info("cpu"),
               "settings": vars(a) | {"batch": 1}, "results": rows}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
