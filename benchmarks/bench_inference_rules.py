"""Inference (no grad, evaluation mode) of the compiled loops under each CPU vendor's product
rule, side by side in one process: ``slices`` (oneDNN brgemm slices on a kept copy of W^T with
padded rows, the default on a CPU that is not Intel's) against ``packed`` (MKL's kept packed
weights, an Intel CPU's default), for the LayerNorm-LSTM, GRU, LayerNorm-GRU and the plain
LSTM (on the compiled loop, ``backend="fused"``), with torch.nn.LSTM beside them (docs/kernels.md, "Padded
rows"). A 2-layer stack, I=128, H=256, T=100, at each batch size and thread count; wall clock,
the median over interleaved rounds of 5 calls each.

    python benchmarks/bench_inference_rules.py --threads 1,2 --batches 8,32,128 \\
        --json benchmarks/results/inference_rules.json
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit.bench.machine import write_suite
from rnnkit.kernels import compiled
from rnnkit.runtime import tune_malloc

CELLS = {"ln_lstm": rnnkit.LayerNormLSTM, "gru": rnnkit.GRU, "ln_gru": rnnkit.LayerNormGRU,
         # the plain LSTM on the compiled loop (``backend="fused"``; where ``auto`` takes it
         # for inference: kernels/dispatch.py, ``_prefers_fused``)
         "lstm": lambda I, H, L: rnnkit.LSTM(I, H, L, backend="fused")}


def _ms(m, x, calls: int = 5) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        m(x)
    return (time.perf_counter() - t0) / calls * 1e3


def run(threads: int, B: int, rounds: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(100, B, 128)
    mods = {"torch.nn.LSTM": torch.nn.LSTM(128, 256, 2).eval()}
    mods |= {k: cls(128, 256, 2).eval() for k, cls in CELLS.items()}
    ext = compiled.ext()
    kept = ext.prefer_slices()
    times: dict[str, list[float]] = {}
    try:
        with torch.no_grad():
            for _ in range(rounds):
                for rule in ("slices", "packed"):
                    ext.set_prefer_slices(rule == "slices")
                    for k, m in mods.items():
                        if k == "torch.nn.LSTM" and rule == "packed":
                            continue  # (torch's kernel: no rule)
                        name = k if k == "torch.nn.LSTM" else f"{k} {rule}"
                        m(x)  # (the rule's kept weights, built outside the timing)
                        times.setdefault(name, []).append(_ms(m, x))
    finally:
        ext.set_prefer_slices(kept)
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    base = med["torch.nn.LSTM"]
    return {"threads": threads, "batch": B, "ms": med,
            "over_torch_lstm": {k: round(v / base, 3) for k, v in med.items()},
            "slices_over_packed": {k: round(med[f"{k} slices"] / med[f"{k} packed"], 3)
                                   for k in CELLS}}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="8,32,128")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    tune_malloc()
    assert compiled.ext() is not None, "the extension did not build"
    rows = []
    for n in (int(t) for t in a.threads.split(",")):
        for B in (int(b) for b in a.batches.split(",")):
            r = run(n, B, a.rounds)
            rows.append(r)
            print(f"threads={n} B={B} slices/packed " + "  ".join(
                f"{k} {v:.2f}" for k, v in r["slices_over_packed"].items()) + "  over torch.nn.LSTM "
                + "  ".join(f"{k} {v:.2f}" for k, v in r["over_torch_lstm"].items()
                            if k.endswith("slices")), flush=True)
    return write_suite(a.json, "inference_rules", "bench_inference_rules.py", argv,
                       "wall, median of interleaved rounds of 5 calls", rows)


if __name__ == "__main__":
    main()
