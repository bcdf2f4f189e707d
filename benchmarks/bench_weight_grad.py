"""The weight gradient ``dW = dy^T x`` of the fused cells: which GEMM form is fastest here.

Over the (M, N, K) shapes of the benchmark layers (M = T*B rows, N = gates*H, K = the input
or hidden size), interleaved rounds, wall clock, median: ``onednn`` = oneDNN's inner product
as ``(x^T dy)^T`` (``linear(x.t(), dy.t()).t()``), ``mkl`` = ``torch.mm(x.t(), dy).t()``
(torch's BLAS), ``mkl_dyT`` = ``torch.mm(dy.t(), x)``. ``_gemm.weight_grad`` picks by the
CPU's vendor from these files (docs/kernels.md, "Small choices").

Usage::

    python benchmarks/bench_weight_grad.py --threads 1,2 --json benchmarks/results/weight_grad_xeon2.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from rnnkit.bench.machine import cpu_model
from rnnkit.kernels.fused._gemm import linear

SHAPES = [(3200, 1024, 128), (3200, 1024, 256), (3200, 768, 256), (12800, 2048, 512),
          (12800, 2048, 128), (12800, 1536, 512), (12800, 1536, 128), (32000, 1536, 128),
          (32000, 2048, 128), (32000, 512, 128), (100, 1024, 256)]



def run(M: int, N: int, K: int, rounds: int) -> dict:
    dy, x = torch.randn(M, N), torch.randn(M, K)
    forms = {"onednn": lambda: linear(x.t(), dy.t()).t().contiguous(),
             "mkl": lambda: torch.mm(x.t(), dy).t().contiguous(),
             "mkl_dyT": lambda: torch.mm(dy.t(), x)}
    ref = forms["mkl_dyT"]()
    for k, f in forms.items():  # warm-up, and all three agree
        torch.testing.assert_close(f(), ref, rtol=1e-4, atol=1e-3 * M ** 0.5, msg=k)
    times: dict[str, list[float]] = {k: [] for k in forms}
    for _ in range(rounds):
        for k, f in forms.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    med = {k: round(statistics.median(v) * 1e3, 3) for k, v in times.items()}
    return {"M": M, "N": N, "K": K, "ms": med,
            "mkl_over_onednn": round(med["mkl"] / med["onednn"], 3)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    out = {"command": "python benchmarks/bench_weight_grad.py " + " ".join(
               sys.argv[1:] if argv is None else argv),
           "machine": {"cpu": cpu_model(), "cores": os.cpu_count()}, "torch": torch.__version__,
           "clock": "wall (time.perf_counter), median of interleaved rounds",
           "load_before": os.getloadavg(), "runs": []}
    for n in (int(t) for t in a.threads.split(",")):
        torch.set_num_threads(n)
        for M, N, K in SHAPES:
            r = {"threads": n, **run(M, N, K, a.rounds)}
            out["runs"].append(r)
            print(f"threads={n} (M, N, K)=({M}, {N}, {K}) " +
                  " ".join(f"{k} {v:.2f} ms" for k, v in r["ms"].items()) +
                  f"  mkl/onednn {r['mkl_over_onednn']:.2f}")
    out["load_after"] = os.getloadavg()
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
