"""Where a GRU's training step goes (the fused backend with its compiled loops), against
torch.nn.GRU, and the floor its GEMMs set.

Issue 21 asks the GRU to train at least 1.5x faster than torch.nn.GRU. Per thread count, at
one shape (default B=128, T=100, I=128, H=512):

1. forward+backward (weights' gradients, no input gradient) of ``rnnkit.GRU(backend="fused")``
   and torch.nn.GRU side by side, wall clock, median of interleaved rounds;
2. torch's profiler over a few of our calls: each op's own time (the compiled forward and
   backward loops, the weight-gradient ``mm``s, the input projection, the Python side's
   ``cat``/``sum``), per call;
3. the GEMMs alone, called as the step calls them: T per-step products forward
   ``(B, H) x (H, 3H)`` and backward ``(B, 3H) x (3H, H)`` through MKL's packed sgemm
   (``torch.ops.mkl._mkl_linear`` with ``_mkl_reorder_linear_weight``, the loops' kernel), the
   input projection (``kernels.fused._gemm.Linear``'s oneDNN product) and the two weight
   gradients (``_gemm.weight_grad``); their sum is a floor under our time, since every GEMM is
   there in any float32 implementation of the step;
4. this core's peak: a square (2048, 2048) x (2048, 2048) sgemm through ``torch.mm`` at the same
   thread count.  The step's multiply-adds at that rate are a floor under any float32
   implementation's time, and torch.nn.GRU's time over it is the largest speed-up over
   torch.nn.GRU this machine allows (``"best_possible_speedup_over_torch_gru"``).

Usage::

    python benchmarks/bench_gru_profile.py --threads 2,1 \\
        --json benchmarks/results/gru_profile_xeon2_s13.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import rnnkit
from rnnkit.bench.machine import cpu_model
from rnnkit.kernels import compiled
from rnnkit.kernels.fused import _gemm
from rnnkit.runtime import tune_malloc


def _median_ms(f, rounds: int) -> float:
    f()
    f()
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def gemm_floor(B: int, T: int, I: int, H: int, rounds: int) -> dict:
    """The step's GEMMs alone, ms per forward+backward."""
    G = 3 * H
    h, dg = torch.randn(B, H), torch.randn(B, G)
    W = torch.randn(G, H) * 0.05
    Wt = W.t().contiguous()
    pf = torch.ops.mkl._mkl_reorder_linear_weight(W, B)  # x W^T, packed
    pb = torch.ops.mkl._mkl_reorder_linear_weight(Wt, B)  # dg W, packed
    x, W_ih = torch.randn(T * B, I), torch.randn(G, I)
    hs, dgs = torch.randn(T * B, H), torch.randn(T * B, G)

    def fwd_steps():
        for _ in range(T):
            torch.ops.mkl._mkl_linear(h, pf, W, None, B)

    def bwd_steps():
        for _ in range(T):
            torch.ops.mkl._mkl_linear(dg, pb, Wt, None, B)

    out = {"step products, forward": _median_ms(fwd_steps, rounds),
           "step products, backward": _median_ms(bwd_steps, rounds),
           "input projection": _median_ms(lambda: _gemm.Linear.apply(x, W_ih, None), rounds),
           "dW_hh": _median_ms(lambda: _gemm.weight_grad(dgs, hs), rounds),
           "dW_ih": _median_ms(lambda: _gemm.weight_grad(dgs, x), rounds)}
    out["all GEMMs"] = sum(out.values())
    flop = 2 * T * B * G * (3 * H + 2 * I)  # 3 recurrent products, 2 with the input
    out["GFLOP"] = flop / 1e9
    return {k: round(v, 2) for k, v in out.items()}


def peak_gflops(rounds: int, n: int = 2048) -> float:
    """GFLOP/s of one square float32 ``torch.mm`` at the current thread count (median)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / (_median_ms(lambda: torch.mm(a, b), rounds) / 1e3) / 1e9


def run(B: int, T: int, I: int, H: int, rounds: int) -> dict:
    torch.manual_seed(0)
    x, g = torch.randn(T, B, I), torch.randn(T, B, H)
    ours, theirs = rnnkit.GRU(I, H, backend="fused"), torch.nn.GRU(I, H)

    def fb(m):
        m.zero_grad(set_to_none=True)
        m(x)[0].backward(g)

    for m in (ours, theirs):
        fb(m)
        fb(m)
    ts = {"rnnkit.GRU (fused, compiled)": [], "torch.nn.GRU": []}
    for r in range(rounds):
        pair = [("rnnkit.GRU (fused, compiled)", ours), ("torch.nn.GRU", theirs)]
        for k, m in pair if r % 2 == 0 else pair[::-1]:
            t0 = time.perf_counter()
            fb(m)
            ts[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in ts.items()}
    n = 3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            fb(ours)
    ops = {e.key: round(e.self_cpu_time_total / 1e3 / n, 2) for e in prof.key_averages()
           if e.self_cpu_time_total / 1e3 / n >= 0.5}
    floor = gemm_floor(B, T, I, H, rounds)
    peak = peak_gflops(rounds)
    at_peak = floor["GFLOP"] / peak * 1e3
    return {"shape": dict(B=B, T=T, I=I, H=H),
            "fwd_bwd_ms": {k: round(v, 2) for k, v in med.items()},
            "speedup_over_torch_gru": round(med["torch.nn.GRU"]
                                            / med["rnnkit.GRU (fused, compiled)"], 3),
            "target_ms (torch.nn.GRU / 1.5)": round(med["torch.nn.GRU"] / 1.5, 2),
            "profile_self_ms_per_call (profiler on)": dict(sorted(ops.items(),
                                                                  key=lambda kv: -kv[1])),
            "gemm_floor_ms": floor,
            "peak_sgemm_gflops (2048^3 torch.mm)": round(peak, 1),
            "floor_at_peak_ms": round(at_peak, 2),
            "ours_gflops": round(floor["GFLOP"] / med["rnnkit.GRU (fused, compiled)"] * 1e3, 1),
            "best_possible_speedup_over_torch_gru": round(med["torch.nn.GRU"] / at_peak, 3)}



def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--shape", default="128,100,128,512", help="B,T,I,H; several joined by ';'")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    os.environ["RNNKIT_COMPILED_SCANS"] = "1"
    tune_malloc()
    assert compiled.ext() is not None, "the extension did not build"
    shapes = [tuple(int(v) for v in sh.split(",")) for sh in a.shape.split(";")]
    argv_ = sys.argv[1:] if argv is None else argv
    out = {"command": "python benchmarks/bench_gru_profile.py " + " ".join(argv_),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
                       "malloc_tuned": True},
           "torch": torch.__version__, "clock": "wall (time.perf_counter)",
           "load_before": os.getloadavg(), "runs": []}
    for B, T, I, H in shapes:
        for n in [int(t) for t in a.threads.split(",")]:
            torch.set_num_threads(n)
            r = run(B, T, I, H, a.rounds)
            r["threads"] = n
            out["runs"].append(r)
            print(json.dumps(r, indent=1), flush=True)
    out["load_after"] = os.getloadavg()
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
