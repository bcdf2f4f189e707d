"""One recurrent product, ``x W^T`` with x (B, K) and W (N, K), through each CPU library torch
ships: MKL's sgemm (``F.linear``, and ``torch.mm`` on W^T as it lies), MKL's packed sgemm
(``torch.ops.mkl._mkl_linear``), and oneDNN's inner product
(``torch.ops.mkldnn._linear_pointwise``, which adds a fixed cost of about 10-15 us a call).
Why the compiled training loops prefer oneDNN's brgemm slices on a CPU that is not Intel's
(``prefer_slices`` in ``kernels/compiled/scans.h``; docs/kernels.md, "MKL on an AMD CPU").

Wall clock, median of 5 batches of calls after a warm-up, per thread count::

    python benchmarks/bench_gemm_vendor.py --threads 1,2 --json benchmarks/results/gemm_vendor.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnkit.bench.machine import cpu_model

SHAPES = [(1, 256, 1024), (1, 512, 2048), (32, 256, 1024), (32, 512, 2048), (128, 512, 1536)]


def _us(f, calls: int) -> float:
    for _ in range(max(5, calls // 20)):
        f()
    per = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        per.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(per)


def _ways(B: int, K: int, N: int) -> dict:
    """The product of one (B, K) x (N, K)^T shape, one callable per library."""
    g = torch.Generator().manual_seed(0)
    x, W = torch.randn(B, K, generator=g), torch.randn(N, K, generator=g)
    Wt = W.t().contiguous()
    ways = {"MKL sgemm (F.linear)": lambda: F.linear(x, W),
            "MKL sgemm (mm on W^T)": lambda: torch.mm(x, Wt)}
    if torch.backends.mkl.is_available():
        Wp = torch.ops.mkl._mkl_reorder_linear_weight(W, B)
        ways["MKL packed"] = lambda: torch.ops.mkl._mkl_linear(x, Wp, W, None, B)
    if torch.backends.mkldnn.is_available():
        Wd = torch.ops.mkldnn._reorder_linear_weight(W, B)
        ways["oneDNN inner product"] = lambda: torch.ops.mkldnn._linear_pointwise(
            x, Wd, None, "none", [], "")
    return ways


def run(threads: list[int]) -> list[dict]:
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        for B, K, N in SHAPES:
            calls = 2000 if B == 1 else 200
            ways = _ways(B, K, N)
            first = next(iter(ways.values()))()
            for k, f in ways.items():  # the same product every way
                torch.testing.assert_close(f(), first, atol=1e-3, rtol=1e-4, msg=k)
            us = {k: round(_us(f, calls), 1) for k, f in ways.items()}
            rows.append({"threads": n, "B": B, "K": K, "N": N, "us": us})
            print(n, (B, K, N), us, flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    rows = run([int(t) for t in a.threads.split(",")])
    if a.json:
        a.json.write_text(json.dumps({
            "command": "python benchmarks/bench_gemm_vendor.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "machine": cpu_model(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d"), "clock": "wall (time.perf_counter)",
            "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
