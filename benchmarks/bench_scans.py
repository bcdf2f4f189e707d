"""The choices inside the modern cells' parallel forms, measured: the scans' hand-written
adjoints against autograd through the doubling steps, the mLSTM's chunk size against
stepping, and S6's peak memory.

    python benchmarks/bench_scans.py --json benchmarks/results/bench_scans_<machine>.json

Forward+backward, float32, one torch thread, the median of ``--repeats`` interleaved rounds
(every contender once per round). S6's memory: the growth of the process's peak RSS over one
forward+backward (Linux's VmHWM, reset just before), in a fresh subprocess.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import torch

import rnnkit
from rnnkit.cells.scan import _ComplexScan, _Scan, linear_scan


def _cpu() -> str:
    for line in open("/proc/cpuinfo", encoding="utf-8"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _scan_cases(T: int, B: int, S: int) -> dict:
    torch.manual_seed(0)
    a = (torch.rand(T, B, S) * 0.9).requires_grad_()
    b, h0 = torch.randn(T, B, S, requires_grad=True), torch.randn(B, S, requires_grad=True)
    ai = (torch.rand(T, B, S) * 0.3).requires_grad_()
    bi, h0i = torch.randn(T, B, S, requires_grad=True), torch.randn(B, S, requires_grad=True)
    return {
        "real, adjoint scan": lambda: _Scan.apply(a, b, h0).sum().backward(),
        "real, autograd": lambda: linear_scan(a, b, h0).sum().backward(),
        "complex, adjoint scan": lambda: sum(_ComplexScan.apply(a, ai, b, bi, h0, h0i)).sum()
        .backward(),
        "complex, autograd": lambda: sum(linear_scan((a, ai), (b, bi), (h0, h0i))).sum()
        .backward(),
    }


def _mlstm_cases(T: int, B: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(T, B, 128)
    out = {}
    for mode, chunk in (("sequential", None), ("parallel", 32), ("parallel", 64),
                        ("parallel", 128)):
        layer = rnnkit.MLSTM(128, 256, num_heads=4, mode=mode)
        if chunk:
            layer.cells[0].chunk_size = chunk
        name = f"mLSTM {mode}" + (f", chunk {chunk}" if chunk else "")
        out[name] = lambda layer=layer: layer(x)[0].sum().backward()
    return out


_S6_PEAK = """
import torch, rnnkit
def status(key):  # kB
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
torch.set_num_threads(1)
layer = rnnkit.S6(256, 256, state_size=16)
x = torch.randn(200, 32, 256)
layer(x[:2])[0].sum().backward()
open("/proc/self/clear_refs", "w").write("5")  # peak RSS := current (a fork inherits its parent's)
before = status("VmRSS")
layer(x)[0].sum().backward()
print((status("VmHWM") - before) * 1024)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    cases = _scan_cases(1000, 8, 1024) | _mlstm_cases(1000, 8)
    for fn in cases.values():  # warm-up
        fn()
    samples = {k: [] for k in cases}
    for _ in range(a.repeats):
        for k, fn in cases.items():
            samples[k].append(_time(fn))
    res = {k: {"median_s": statistics.median(v), "samples_s": v} for k, v in samples.items()}
    for k, v in res.items():
        print(f"{k:28s} {v['median_s'] * 1000:9.1f} ms")
    grown = int(subprocess.run([sys.executable, "-c", _S6_PEAK], capture_output=True, text=True,
                               check=True).stdout)
    print(f"S6(256, 256, N=16), T=200, B=32: peak RSS grew {grown / 2**30:.2f} GiB "
          f"(one (T, B, H*N) float32 tensor: {200 * 32 * 256 * 16 * 4 / 2**30:.2f} GiB)")
    doc = {"what": __doc__.split("\n\n")[0], "command": " ".join(["python", *sys.argv]),
           "settings": {"scans": "T=1000, B=8, S=1024", "mlstm": "MLSTM(128, 256, num_heads=4), "
                        "T=1000, B=8", "threads": 1, "dtype": "float32", "repeats": a.repeats},
           "results": res, "s6_peak_rss_growth_bytes": grown,
           "machine": {"cpu": _cpu(),
                       "cores": len(__import__("os").sched_getaffinity(0)),
                       "torch": torch.__version__, "python": platform.python_version()},
           "date": time.strftime("%Y-%m-%d")}
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
