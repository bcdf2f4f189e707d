"""The compiled step library (``kernels/fused/_csteps.c``) against the fused scans' torch steps.

Per round, side by side in one process: the layer with the library, the same layer
with its pure-torch steps (``_csteps.lib`` patched to ``None``), torch.nn.LSTM and GRU;
each gets a forward with autograd and ``out.backward(g)``. Process CPU time (or wall
time with ``--clock wall``), median over the rounds after the first, allocator tuned as the ``rnnkit`` command does. Then the
zoneout keep-mask draws of one layer over T steps: ``bernoulli_`` per step (what the
scans drew before) against the float32 uniform draws + ``floor(u + p)`` they draw now.

Usage::

    python benchmarks/bench_native.py --rounds 9
    python benchmarks/bench_native.py --shape 128,100,512 --threads 2 --clock wall --rounds 5
    python benchmarks/bench_native.py --rounds 9 --json benchmarks/results/bench_native_s6.json
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
from rnnkit.kernels.fused import _csteps
from rnnkit.layers.regularizers import uniform_draws, zoneout_keep_
from rnnkit.runtime import tune_malloc

LAYERS = {
    "lstm_zoneout": lambda I, H: rnnkit.LSTM(I, H, zoneout=0.1),
    "lstm_rec_dropout": lambda I, H: rnnkit.LSTM(I, H, recurrent_dropout=0.25),
    "ln_lstm": lambda I, H: rnnkit.LayerNormLSTM(I, H),
    "ln_lstm_zoneout": lambda I, H: rnnkit.LayerNormLSTM(I, H, zoneout=0.1),
    "gru": lambda I, H: rnnkit.GRU(I, H),  # auto on CPU: the fused scan when training
    "ln_gru": lambda I, H: rnnkit.LayerNormGRU(I, H),
}


CLOCK = time.process_time


def _fwd_bwd(mod, x, g) -> float:
    mod.zero_grad(set_to_none=True)
    t0 = CLOCK()
    mod(x)[0].backward(g)
    return CLOCK() - t0


def _masks(T: int, B: int, H: int, p: float, rounds: int) -> dict[str, float]:
    like = torch.empty(B, H)

    def bernoulli():
        k = [torch.empty(T, B, H) for _ in range(2)]
        for t in range(T):
            for kk in k:
                kk[t].bernoulli_(p)

    def uniform():
        u = [uniform_draws(like, T) for _ in range(2)]
        for t in range(T):
            for uu in u:
                uu[t].uniform_()
        for uu in u:
            zoneout_keep_(uu, p)

    times: dict[str, list[float]] = {"bernoulli_per_step": [], "uniform_floor": []}
    for _ in range(rounds):
        for name, f in (("bernoulli_per_step", bernoulli), ("uniform_floor", uniform)):
            t0 = CLOCK()
            f()
            times[name].append(CLOCK() - t0)
    return {k: round(statistics.median(v[1:] or v) * 1e3, 2) for k, v in times.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="32,100,256", help="B,T,H (I = 128)")
    ap.add_argument("--layers", default=",".join(LAYERS), help=f"subset of {','.join(LAYERS)}")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="process CPU time (default) or wall time (for --threads > 1: the C "
                         "steps run on one thread, torch's elementwise ops on all)")
    ap.add_argument("--json", type=Path, help="append this run's record to a JSON list here")
    a = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if a.clock == "cpu" else time.perf_counter
    tune_malloc()
    torch.set_num_threads(a.threads)
    if _csteps.lib() is None:
        raise SystemExit("the native library did not build: nothing to compare")
    B, T, H = (int(v) for v in a.shape.split(","))
    torch.manual_seed(0)
    x, g = torch.randn(T, B, 128), torch.randn(T, B, H)
    refs = {"torch.nn.LSTM": torch.nn.LSTM(128, H), "torch.nn.GRU": torch.nn.GRU(128, H)}
    real = _csteps.lib
    layers = {name: LAYERS[name](128, H) for name in a.layers.split(",")}
    times: dict[str, list[float]] = {k: [] for k in refs}
    for _ in range(a.rounds):
        for name, mod in refs.items():
            times[name].append(_fwd_bwd(mod, x, g))
        for name, mod in layers.items():
            for label, lib in (("native", real), ("torch steps", lambda: None)):
                _csteps.lib = lib
                try:
                    times.setdefault(f"{name} ({label})", []).append(_fwd_bwd(mod, x, g))
                finally:
                    _csteps.lib = real
    med = {k: statistics.median(v[1:] or v) * 1e3 for k, v in times.items()}
    base, base_gru = med["torch.nn.LSTM"], med["torch.nn.GRU"]
    print(f"B={B} T={T} I=128 H={H}, {a.threads} thread(s), forward+backward, median of "
          f"{a.rounds - 1} rounds after the first, {a.clock} time")
    for k, v in med.items():
        print(f"  {k:34s} {v:8.2f} ms  {v / base:5.2f}x torch.nn.LSTM  "
              f"{v / base_gru:5.2f}x torch.nn.GRU")
    masks = _masks(T, B, H, 0.1, a.rounds)
    print(f"  zoneout masks, 2 states x {T} steps of ({B}, {H}): "
          + ", ".join(f"{k} {v} ms" for k, v in masks.items()))
    if a.json:
        runs = json.loads(a.json.read_text()) if a.json.exists() else []
        runs.append({"command": "python benchmarks/bench_native.py " + " ".join(argv or []),
                     "B": B, "T": T, "I": 128, "H": H, "threads": a.threads, "clock": a.clock,
                     "rounds": a.rounds, "forward_backward_ms": {k: round(v, 2)
                                                                for k, v in med.items()},
                     "ratio_to_torch_lstm": {k: round(v / base, 3) for k, v in med.items()},
                     "ratio_to_torch_gru": {k: round(v / base_gru, 3) for k, v in med.items()},
                     "zoneout_masks_ms": masks, "torch": torch.__version__,
                     "rnnkit": rnnkit.__version__,
                     "cpu": platform.processor() or platform.machine()})
        a.json.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
