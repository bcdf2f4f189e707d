"""Speed of the fused CPU backend against torch.nn and the rnnkit loop, side by side.

For each cell (LSTM, GRU, RNN) at one shape (default B=32, T=100, I=128, H=256),
one layer, unidirectional, training mode, float32, it times

- ``torch.nn``: ``torch.nn.LSTM/GRU/RNN`` (oneDNN for LSTM, ATen's per-step loop else);
- ``loop``: ``rnnkit.LSTM/GRU/RNN(backend="loop")``, the reference Python loop;
- ``fused``: ``rnnkit.LSTM/GRU/RNN(backend="fused")``, whose per-direction scans
  run :func:`rnnkit.kernels.fused.fused_scan` and projections ``fused_project``;
- with ``--regularised``: LSTM with zoneout 0.1, recurrent dropout 0.25 or
  weight_drop 0.5, fused (and zoneout by the loop, for reference; torch.nn
  cannot run them);
- with ``--options``: other ways to write the GRU scan, for docs/kernels.md: the
  step compiled by ``torch.jit.script``, the step compiled by ``torch.compile``
  (inductor's C++ backend: needs a C++ compiler at run time), and the fused scan
  with torch's default BLAS (``addmm``) instead of oneDNN.

Each repeat runs every variant once, in an order rotated per repeat, forward
(``no_grad``) then forward+backward (``out.sum().backward()`` with an input that
requires grad); we report medians over repeats after warm-up, the 25-75 % spread,
and both wall time and process CPU time (robust when other jobs share the cores).

Usage::

    python benchmarks/bench_fused.py --repeats 15 --threads 1 --regularised --options \\
        --json benchmarks/results/fused_cpu_t1.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.kernels.fused import _gemm

TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
RNNKIT = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}


# ------------------------------------------------- other ways (--options)
def _gru_step(x_t, h, W_hh, b_hh):
    """torch.nn.GRU's step on a projected input x_t (B, 3H)."""
    x_r, x_z, x_n = x_t.chunk(3, 1)
    h_r, h_z, h_n = torch.addmm(b_hh, h, W_hh.t()).chunk(3, 1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return n + z * (h - n)


class _StepGRU(torch.nn.Module):
    """A GRU layer whose step is a compiled function, looped in Python with autograd."""

    def __init__(self, ref: torch.nn.GRU, step):
        super().__init__()
        self.ref, self.step = ref, step

    def forward(self, x):
        r = self.ref
        xp = F.linear(x, r.weight_ih_l0, r.bias_ih_l0)  # (T, B, 3H), one GEMM
        h = x.new_zeros(x.shape[1], r.hidden_size)
        ys = []
        for t in range(x.shape[0]):
            h = self.step(xp[t], h, r.weight_hh_l0, r.bias_hh_l0)
            ys.append(h)
        return torch.stack(ys), h


class _BlasFused(torch.nn.Module):
    """The fused GRU layer with torch's default BLAS (addmm) instead of oneDNN."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        saved = _gemm._onednn_ok
        _gemm._onednn_ok = False
        try:
            return self.layer(x)
        finally:
            _gemm._onednn_ok = saved


# ----------------------------------------------------------------- harness
def build(args) -> dict[str, tuple[str, torch.nn.Module]]:
    """{variant name: (cell, module)}, all sharing torch.nn's initial weights per cell."""
    I, H = args.input, args.hidden
    variants = {}
    for cell in args.cells:
        torch.manual_seed(0)
        ref = TORCH[cell](I, H)
        variants[f"{cell} torch.nn"] = (cell, ref)
        for name in ("loop", "fused")[args.no_loop:]:
            m = RNNKIT[cell](I, H, backend=name)
            m.load_state_dict(ref.state_dict())
            variants[f"{cell} {name}"] = (cell, m)
        if args.regularised and cell == "lstm":
            for reg in (dict(zoneout=0.1), dict(recurrent_dropout=0.25), dict(weight_drop=0.5)):
                (k, v), = reg.items()
                for name in ("loop", "fused") if k == "zoneout" and not args.no_loop \
                        else ("fused",):
                    m = rnnkit.LSTM(I, H, backend=name, **reg)
                    m.load_state_dict(ref.state_dict())
                    variants[f"lstm {k}={v} {name}"] = (cell, m)
        if args.options and cell == "gru":
            variants["gru opt:jit.script step"] = (cell, _StepGRU(ref, torch.jit.script(_gru_step)))
            compiled = torch.compile(_gru_step, dynamic=False)
            variants["gru opt:torch.compile step"] = (cell, _StepGRU(ref, compiled))
            variants["gru opt:fused with addmm"] = (cell, _BlasFused(variants["gru fused"][1]))
    for _, m in variants.values():
        m.train()
    return variants


def _time(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3


def measure(variants, x, repeats: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    def fwd(m):
        with torch.no_grad():
            m(x)

    def fwd_bwd(m):
        out = m(x)[0]
        out.sum().backward()

    names = list(variants)
    times = {n: {"fwd_wall": [], "fwd_cpu": [], "fb_wall": [], "fb_cpu": []} for n in names}
    for r in range(warmup + repeats):
        k = r % len(names)
        for n in names[k:] + names[:k]:  # rotated order
            m = variants[n][1]
            m.zero_grad(set_to_none=True)
            a, b = _time(lambda m=m: fwd(m))
            c, d = _time(lambda m=m: fwd_bwd(m))
            if r >= warmup:
                for key, v in zip(("fwd_wall", "fwd_cpu", "fb_wall", "fb_cpu"), (a, b, c, d)):
                    times[n][key].append(v)
        print(f"  repeat {r + 1}/{warmup + repeats} done", file=sys.stderr)
    return times


def _stats(v: list[float]) -> dict[str, float]:
    q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "p25": q[0], "p75": q[2], "min": min(v)}


def summarise(variants, times) -> list[dict]:
    rows = []
    for n, (cell, _) in variants.items():
        s = {k: _stats(v) for k, v in times[n].items()}
        base = {k: _stats(v)["median"] for k, v in times[f"{cell} torch.nn"].items()}
        rows.append({"variant": n, "cell": cell, **{k: s[k] for k in s},
                     **{f"ratio_{k}": base[k] / s[k]["median"] for k in s}})
    return rows


def print_table(rows, clock: str) -> None:
    print(f"\n{clock} time, ms: median [p25, p75]; speed = torch.nn's median / this median")
    print("| variant | forward | fwd speed | forward+backward | f+b speed |")
    print("|---|---|---|---|---|")
    for r in rows:
        f, b = r[f"fwd_{clock}"], r[f"fb_{clock}"]
        print(f"| {r['variant']} | {f['median']:.1f} [{f['p25']:.1f}, {f['p75']:.1f}] | "
              f"{r[f'ratio_fwd_{clock}']:.2f}x | {b['median']:.1f} [{b['p25']:.1f}, "
              f"{b['p75']:.1f}] | {r[f'ratio_fb_{clock}']:.2f}x |")


def environment(threads: int) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "rnnkit": getattr(rnnkit, "__version__", "?"), "python": platform.python_version(),
            "onednn_gemm": _gemm.onednn_available(), "load_avg_start": os.getloadavg()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--time", type=int, default=100)
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--cells", default="lstm,gru,rnn")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--regularised", action="store_true")
    ap.add_argument("--options", action="store_true")
    ap.add_argument("--no-loop", action="store_true", help="leave out the (slow) loop variants")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    bad = [c for c in args.cells if c not in TORCH]
    if bad:
        ap.error(f"--cells: unknown {bad}; choose from {sorted(TORCH)}")
    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    print(json.dumps(env))
    variants = build(args)
    torch.manual_seed(1)
    x = torch.randn(args.time, args.batch, args.input, requires_grad=True)
    times = measure(variants, x, args.repeats, args.warmup)
    rows = summarise(variants, times)
    env["load_avg_end"] = os.getloadavg()
    for clock in ("cpu", "wall"):
        print_table(rows, clock)
    if args.json:
        shape = dict(B=args.batch, T=args.time, I=args.input, H=args.hidden)
        with open(args.json, "w") as fh:
            json.dump({"environment": env, "shape": shape, "repeats": args.repeats,
                       "warmup": args.warmup, "dtype": "float32", "mode": "train",
                       "results": rows, "raw_ms": times}, fh, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
