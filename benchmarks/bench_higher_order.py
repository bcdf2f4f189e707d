"""What gradients of every order cost: a gradient-penalty step on each backend, side by side.

Per layer, interleaved in one process, wall clock, median over the rounds after a warm-up:

- ``first``: forward + ordinary backward (the training step; what the reference must not slow);
- ``penalty``: forward, ``torch.autograd.grad(out, x, create_graph=True)``, then the backward
  of ``|dx|^2`` to the weights (a WGAN-GP critic's step). On ``auto`` the fused scan runs its
  forward, and the create_graph backward differentiates its reference
  (:mod:`rnnkit.kernels._higher`); ``loop`` is autograd over the Python loop; ``torch`` is
  torch's kernel, where it can run the layer.

Usage::

    python benchmarks/bench_higher_order.py --rounds 7
    python benchmarks/bench_higher_order.py --rounds 7 --threads 1 \\
        --json benchmarks/results/bench_higher_order_1thread.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit.bench.machine import machine_info
from rnnkit.kernels.dispatch import choose_backend

LAYERS = {  # name -> (constructor(I, H, backend), lengths?)
    "gru": (lambda I, H, b: rnnkit.GRU(I, H, backend=b), False),
    "lstm_lengths": (lambda I, H, b: rnnkit.LSTM(I, H, backend=b), True),
    "ln_lstm_zoneout": (lambda I, H, b: rnnkit.LayerNormLSTM(I, H, zoneout=0.1, backend=b), False),
    "sru": (lambda I, H, b: rnnkit.SRU(I, H, backend=b), False),
}


def _first(layer, x, lengths):
    layer.zero_grad(set_to_none=True)
    out, _ = layer(x, lengths=lengths)
    out.backward(torch.ones_like(out))


def _penalty(layer, x, lengths):
    layer.zero_grad(set_to_none=True)
    out, _ = layer(x, lengths=lengths)
    (dx,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    dx.pow(2).sum().backward()


def _time(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="32,100,128,256", help="B,T,I,H")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="default: torch's")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    B, T, I, H = (int(v) for v in args.shape.split(","))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, I, generator=g, requires_grad=True)
    rows = []
    for name, (make, varlen) in LAYERS.items():
        lengths = torch.randint(T // 2, T + 1, (B,), generator=g) if varlen else None
        if lengths is not None:
            lengths[0] = T
        contenders = {}
        for backend in ("auto", "loop", "torch"):
            torch.manual_seed(0)
            layer = make(I, H, backend)
            try:
                layer(x[:2, :2], lengths=None if lengths is None else lengths[:2].clamp(max=2))
            except ValueError:  # torch cannot run this layer
                continue
            contenders[backend] = layer
        picked = choose_backend(contenders["auto"], x, lengths)
        times = {(b, k): [] for b in contenders for k in ("first", "penalty")}
        for r in range(args.rounds + 1):
            for b, layer in contenders.items():
                for kind, fn in (("first", _first), ("penalty", _penalty)):
                    if kind == "first" and b != "auto":
                        continue
                    t = _time(fn, layer, x, lengths)
                    if r:  # round 0 warms up
                        times[(b, kind)].append(t)
        med = {f"{b}_{k}_ms": round(1e3 * statistics.median(v), 2)
               for (b, k), v in times.items() if v}
        row = {"layer": name, "auto_runs": picked, **med,
               "penalty_over_first_auto": round(med["auto_penalty_ms"] / med["auto_first_ms"], 2),
               "penalty_auto_over_loop": round(med["auto_penalty_ms"] / med["loop_penalty_ms"], 2)}
        if "torch_penalty_ms" in med:
            row["penalty_auto_over_torch"] = round(med["auto_penalty_ms"] / med["torch_penalty_ms"], 2)
        rows.append(row)
        print(json.dumps(row))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"command": "python benchmarks/bench_higher_order.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if v is not None and k != "json"),
               "shape": {"B": B, "T": T, "I": I, "H": H}, "clock": "wall",
               "threads": torch.get_num_threads(), "machine": machine_info(), "results": rows}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
