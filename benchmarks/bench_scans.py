"""The choices inside the modern cells' parallel forms, measured: the CPU's step loop against
the doubling scan, the scans' hand-written adjoints against autograd through the doubling
steps, S6's chunked selective scan against the composed one (time and peak memory), and the
mLSTM's chunk size against stepping.

    python benchmarks/bench_scans.py --json benchmarks/results/bench_scans_<machine>.json

Forward+backward, float32, the median of ``--repeats`` interleaved rounds (every contender
once per round), at each of ``--threads`` (default: 1 and torch's default count). S6's
memory: the growth of the process's peak RSS over one forward+backward (Linux's VmHWM, reset
just before), in a fresh subprocess per variant.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time

import torch

import rnnkit
from rnnkit.cells import scan, ssm
from rnnkit.cells.scan import _ComplexScan, _Scan, linear_scan
from rnnkit.cells.selective import composed_scan, selective_scan


def _cpu() -> str:
    for line in open("/proc/cpuinfo", encoding="utf-8"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@contextlib.contextmanager
def _path(name: str):
    """Run :func:`linear_scan` as the step loop or the doubling scan, whatever the sizes."""
    old = scan.SEQUENTIAL_MIN_ELEMENTS
    scan.SEQUENTIAL_MIN_ELEMENTS = 0 if name == "loop" else 1 << 62
    try:
        yield
    finally:
        scan.SEQUENTIAL_MIN_ELEMENTS = old


def _scan_cases(T: int, B: int, S: int) -> dict:
    torch.manual_seed(0)
    a = (torch.rand(T, B, S) * 0.9).requires_grad_()
    b, h0 = torch.randn(T, B, S, requires_grad=True), torch.randn(B, S, requires_grad=True)
    ai = (torch.rand(T, B, S) * 0.3).requires_grad_()
    bi, h0i = torch.randn(T, B, S, requires_grad=True), torch.randn(B, S, requires_grad=True)
    out = {}
    for path in ("loop", "doubling"):
        def real(path=path):
            with _path(path):
                _Scan.apply(a, b, h0).sum().backward()

        def cplx(path=path):
            with _path(path):
                sum(_ComplexScan.apply(a, ai, b, bi, h0, h0i)).sum().backward()

        out[f"real, adjoint scan, {path}"] = real
        out[f"complex, adjoint scan, {path}"] = cplx

    def real_autograd():
        with _path("doubling"):
            linear_scan(a, b, h0).sum().backward()

    def complex_autograd():
        with _path("doubling"):
            sum(linear_scan((a, ai), (b, bi), (h0, h0i))).sum().backward()

    return out | {"real, autograd through doubling": real_autograd,
                  "complex, autograd through doubling": complex_autograd}


def _crossover_cases(T: int, sizes=(64, 128, 256, 512, 1024)) -> dict:
    """Forward only, T steps of B*S = ``n`` elements each (B = 1), on both paths: where the
    step loop starts to win (``SEQUENTIAL_MIN_ELEMENTS``)."""
    torch.manual_seed(0)
    out = {}
    for n in sizes:
        a, b, h0 = torch.rand(T, 1, n) * 0.9, torch.randn(T, 1, n), torch.randn(1, n)
        for path in ("loop", "doubling"):
            def fwd(a=a, b=b, h0=h0, path=path):
                with _path(path):
                    linear_scan(a, b, h0)

            out[f"forward B*S={n}, {path}"] = fwd
    return out


def _s6_cases(T: int, B: int) -> dict:
    torch.manual_seed(0)
    layer, x = rnnkit.S6(128, 256, state_size=16), torch.randn(T, B, 128)

    def composed():
        ssm.selective_scan = composed_scan
        try:
            layer(x)[0].sum().backward()
        finally:
            ssm.selective_scan = selective_scan

    return {"S6 chunked selective scan": lambda: layer(x)[0].sum().backward(),
            "S6 composed scan": composed, "LSTM (torch.nn)": _lstm(T, B)}


def _lstm(T: int, B: int):
    lstm, x = torch.nn.LSTM(128, 256), torch.randn(T, B, 128)
    return lambda: lstm(x)[0].sum().backward()


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
import sys, torch, rnnkit
from rnnkit.cells import selective, ssm
def status(key):  # kB
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
torch.set_num_threads(1)
if sys.argv[1] == "composed":
    ssm.selective_scan = selective.composed_scan
layer = rnnkit.S6(256, 256, state_size=16)
x = torch.randn(200, 32, 256)
layer(x[:2])[0].sum().backward()
open("/proc/self/clear_refs", "w").write("5")  # peak RSS := current (a fork inherits its parent's)
before = status("VmRSS")
layer(x)[0].sum().backward()
print((status("VmHWM") - before) * 1024)
"""


def _rounds(cases: dict, repeats: int) -> dict:
    for fn in cases.values():  # warm-up
        fn()
    samples = {k: [] for k in cases}
    for _ in range(repeats):
        for k, fn in cases.items():
            samples[k].append(_time(fn))
    return {k: {"median_s": statistics.median(v), "samples_s": v} for k, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                    help="comma-separated thread counts (default: 1 and torch's default)")
    ap.add_argument("--json")
    a = ap.parse_args()
    threads = sorted({int(t) for t in a.threads.split(",")})
    res = {}
    for n in threads:
        torch.set_num_threads(n)
        cases = _scan_cases(1000, 8, 1024) | _crossover_cases(1000) | _s6_cases(1000, 8) \
            | _mlstm_cases(1000, 8)
        res[str(n)] = _rounds(cases, a.repeats)
        for k, v in res[str(n)].items():
            print(f"{n} thread(s)  {k:36s} {v['median_s'] * 1000:9.1f} ms", flush=True)
    grown = {v: int(subprocess.run([sys.executable, "-c", _S6_PEAK, v], capture_output=True,
                                   text=True, check=True).stdout)
             for v in ("chunked", "composed")}
    for v, g in grown.items():
        print(f"S6(256, 256, N=16), T=200, B=32, {v}: peak RSS grew {g / 2**30:.2f} GiB "
              f"(one (T, B, H*N) float32 tensor: {200 * 32 * 256 * 16 * 4 / 2**30:.2f} GiB)")
    doc = {"what": __doc__.split("\n\n")[0], "command": " ".join(["python", *sys.argv]),
           "settings": {"scans": "T=1000, B=8, S=1024", "crossover": "T=1000, B=1, forward "
                        "only", "s6": "S6(128, 256, N=16), T=1000, "
                        "B=8; LSTM(128, 256) beside it", "mlstm": "MLSTM(128, 256, "
                        "num_heads=4), T=1000, B=8", "threads": threads, "dtype": "float32",
                        "repeats": a.repeats},
           "results_by_threads": res, "s6_peak_rss_growth_bytes": grown,
           "git_commit": subprocess.run(["git", "describe", "--always", "--dirty"],
                                        capture_output=True, text=True).stdout.strip(),
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
