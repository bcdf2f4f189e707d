"""Forward and backward timed apart: an rnnkit layer against torch.nn.LSTM, alternating.

A plain loop, not the interleaved suite of ``rnnkit bench``: per round, each layer gets its
gradients set to None, a forward (with autograd) and ``out.backward(g)`` with a fixed
random ``g``; process CPU time, one thread, median over the rounds after the first.
Used to see where a ratio comes from (e.g. a LayerNorm-LSTM's backward at large T).

Usage::

    python benchmarks/bench_split.py --layer LayerNormLSTM --shape 128,400,512 --rounds 3
    python benchmarks/bench_split.py --shape 32,100,256 --rounds 6 --tune-malloc
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnkit


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layer", default="LayerNormLSTM", help="an rnnkit layer class name")
    ap.add_argument("--shape", default="32,100,256", help="B,T,H (I = 128)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--tune-malloc", action="store_true",
                    help="call rnnkit.kernels.fused.tune_malloc() first (the rnnkit command does)")
    a = ap.parse_args(argv)
    if a.tune_malloc:
        from rnnkit.kernels.fused import tune_malloc

        print("tune_malloc:", tune_malloc())
    torch.set_num_threads(1)
    torch.manual_seed(0)
    B, T, H = (int(v) for v in a.shape.split(","))
    ours = getattr(rnnkit, a.layer)(128, H, backend=a.backend)
    ref = torch.nn.LSTM(128, H)
    x, g = torch.randn(T, B, 128), torch.randn(T, B, H)
    res: dict[str, list[float]] = {k: [] for k in ("ours_fwd", "ours_bwd", "lstm_fwd", "lstm_bwd")}
    for _ in range(a.rounds):
        for name, mod in (("ours", ours), ("lstm", ref)):
            mod.zero_grad(set_to_none=True)
            t0 = time.process_time()
            y = mod(x)[0]
            t1 = time.process_time()
            y.backward(g)
            t2 = time.process_time()
            res[f"{name}_fwd"].append(t1 - t0)
            res[f"{name}_bwd"].append(t2 - t1)
    med = {k: statistics.median(v[1:] or v) * 1e3 for k, v in res.items()}
    total = (med["ours_fwd"] + med["ours_bwd"]) / (med["lstm_fwd"] + med["lstm_bwd"])
    print(f"{a.layer} B={B} T={T} H={H}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items())
          + f"; forward+backward {total:.2f}x torch.nn.LSTM; backward per step "
          f"{med['ours_bwd'] / T:.2f} vs {med['lstm_bwd'] / T:.2f} ms")


if __name__ == "__main__":
    main()
