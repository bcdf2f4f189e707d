"""Forward and backward timed apart: an rnnkit layer against torch.nn.LSTM, alternating.

A plain loop, not the interleaved suite of ``rnnkit bench``: per round, each layer gets its
gradients set to None, a forward (with autograd) and ``out.backward(g)`` with a fixed
random ``g``; process CPU time, one thread, median over the rounds after the first.
Used to see where a ratio comes from (e.g. a LayerNorm-LSTM's backward at large T).

Usage::

    python benchmarks/bench_split.py --layer LayerNormLSTM --shape 128,400,512 --rounds 3
    python benchmarks/bench_split.py --shape 32,100,256 --rounds 6 --tune-malloc
    python benchmarks/bench_split.py --shape 128,400,512 --rounds 3 --tune-malloc \
        --json benchmarks/results/bench_split_s5.json --label s5
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import rnnkit


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layer", default="LayerNormLSTM", help="an rnnkit layer class name")
    ap.add_argument("--shape", default="32,100,256", help="B,T,H (I = 128)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--tune-malloc", action="store_true",
                    help="call rnnkit.runtime.tune_malloc() first (the rnnkit command does)")
    ap.add_argument("--json", type=Path, help="append this run's record to a JSON list here")
    ap.add_argument("--label", default="", help="a name for the run in the JSON record")
    a = ap.parse_args(argv)
    tuned = False
    if a.tune_malloc:
        from rnnkit.runtime import tune_malloc

        tuned = tune_malloc()
        print("tune_malloc:", tuned)
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
    if a.json:
        runs = json.loads(a.json.read_text()) if a.json.exists() else []
        runs.append({"label": a.label, "layer": a.layer, "backend": a.backend, "B": B, "T": T,
                     "I": 128, "H": H, "rounds": a.rounds, "tune_malloc": tuned,
                     "median_ms": {k: round(v, 2) for k, v in med.items()},
                     "ratio_forward_backward": round(total, 3),
                     "torch": torch.__version__, "rnnkit": rnnkit.__version__,
                     "cpu": platform.processor() or platform.machine(), "threads": 1})
        a.json.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
