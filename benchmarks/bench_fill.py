"""Cost of filling fresh memory vs memory the process kept: eight 128 MB tensors, freed, six times.

Shows the first-touch page faults that :func:`rnnkit.runtime.tune_malloc` avoids::

    python benchmarks/bench_fill.py            # glibc's default: every round refaults
    python benchmarks/bench_fill.py --tune-malloc
    python benchmarks/bench_fill.py --hold 24   # 256 MB blocks kept: first touch as the process grows
"""
from __future__ import annotations

import argparse
import time

import torch


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tune-malloc", action="store_true")
    ap.add_argument("--hold", type=int, default=0,
                    help="instead: keep this many 256 MB blocks, timing each block's first fill")
    a = ap.parse_args(argv)
    if a.tune_malloc:
        from rnnkit.runtime import tune_malloc

        print("tune_malloc:", tune_malloc())
    torch.set_num_threads(1)
    if a.hold:
        held = []
        for i in range(a.hold):
            t = torch.empty(2 ** 26)  # 256 MB of float32
            t0 = time.perf_counter()
            t.fill_(1.0)
            held.append(t)
            print(f"block {i} ({(i + 1) / 4:.2f} GB held): {(time.perf_counter() - t0) * 4:.3f} s per GB")
        return
    for r in range(6):
        t0 = time.perf_counter()
        keep = []
        for _ in range(8):
            t = torch.empty(2 ** 25)  # 128 MB of float32
            t.fill_(1.0)
            keep.append(t)
        dt = time.perf_counter() - t0
        del keep
        print(f"round {r}: {dt:.3f} s per GB filled")


if __name__ == "__main__":
    main()
