"""Where ``backend="auto"`` should run an LSTM on rnnkit's compiled loop instead of torch's CPU
kernel: torch.nn.LSTM against ``rnnkit.LSTM(backend="fused")`` (the compiled time loop) side by
side in one process, for the two cases ``kernels/dispatch.py`` (``_prefers_fused``) decides on
this file's measurements:

- **inference at small batch** (no grad, evaluation mode, a 2-layer stack, H=256): torch's
  oneDNN kernel against the compiled loop's products under the CPU's vendor rule (brgemm
  slices on a kept W^T away from Intel, MKL's packed weights on Intel);
- **LSTM with projections** (``proj_size``): torch has no oneDNN kernel for it and runs ATen's
  step-by-step loop (its warning says so), in training and in inference, with and without
  varying lengths.

Wall clock, the median over interleaved rounds of at least 0.1 s each; T=100, I=128. Each row also names the
backend ``auto`` picks there, so the rule and its measurement sit side by side.

    python benchmarks/bench_lstm_auto.py --threads 1,2 \\
        --json benchmarks/results/lstm_auto_amd2_s17.json
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import torch

import rnnkit
from rnnkit.bench.machine import write_suite
from rnnkit.kernels import compiled
from rnnkit.kernels.dispatch import choose_backend
from rnnkit.runtime import tune_malloc

T, I = 100, 128


def _ms(f, at_least: float = 0.1) -> float:
    """ms per call of ``f``, over as many calls as take ``at_least`` seconds (one at least)."""
    calls, t0 = 0, time.perf_counter()
    while True:
        f()
        calls += 1
        t = time.perf_counter() - t0
        if t >= at_least:
            return t / calls * 1e3


def case(threads: int, B: int, H: int, proj: int, train: bool, lengths: bool,
         rounds: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(T, B, I)
    lens = torch.randint(T // 2, T + 1, (B,)) if lengths else None
    if lens is not None:
        lens[0] = T
    ref = torch.nn.LSTM(I, H, 2, proj_size=proj)
    ours = rnnkit.LSTM(I, H, 2, proj_size=proj, backend="fused")
    ours.load_state_dict(ref.state_dict())
    auto = rnnkit.LSTM(I, H, 2, proj_size=proj)
    for m in (ref, ours, auto):
        m.train(train)
    packed = (torch.nn.utils.rnn.pack_padded_sequence(x, lens, enforce_sorted=False)
              if lens is not None else None)

    def call(m):
        if m is ref:
            return m(packed if packed is not None else x)
        return m(x, lengths=lens) if lens is not None else m(x)

    def out(m):
        y = call(m)[0]
        return y.data if isinstance(y, torch.nn.utils.rnn.PackedSequence) else y

    def step(m):
        if train:
            m.zero_grad(set_to_none=True)
            out(m).sum().backward()
        else:
            with torch.no_grad():
                out(m)

    with torch.no_grad():
        a, b = out(ref), out(ours)
        if lens is not None:  # (torch's packed data is time-major by batch size; compare h_n)
            a, b = call(ref)[1][0], call(ours)[1][0]
        err = float((a - b).abs().max())
    with torch.set_grad_enabled(train):
        picked = choose_backend(auto, x, lens)
    times: dict[str, list[float]] = {"torch.nn.LSTM": [], "rnnkit compiled": []}
    for m in (ref, ours):
        step(m)
    for r in range(rounds):
        pair = [("torch.nn.LSTM", ref), ("rnnkit compiled", ours)]
        for k, m in pair if r % 2 == 0 else pair[::-1]:
            times[k].append(_ms(lambda m=m: step(m)))
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    return {"threads": threads, "B": B, "H": H, "proj_size": proj,
            "mode": "train (forward+backward)" if train else "inference (no grad)",
            "lengths": "varying" if lengths else "all T", "ms": med,
            "compiled_over_torch": round(med["rnnkit compiled"] / med["torch.nn.LSTM"], 3),
            "max_abs_diff": err, "auto_picks": picked}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,2,3,4,8,32,128",
                    help="inference batch sizes of the plain LSTM")
    ap.add_argument("--proj-batches", default="1,8,32,128")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    tune_malloc()
    warnings.filterwarnings("ignore", message="LSTM with projections is not supported")
    assert compiled.ext() is not None, "the extension did not build"
    rows = []
    grid = [(B, 256, 0, False, False) for B in map(int, a.batches.split(","))]
    for B in (int(b) for b in a.proj_batches.split(",") if b.strip()):  # ("": none)
        grid += [(B, 256, 128, train, lengths) for train in (False, True)
                 for lengths in ((False, True) if B > 1 else (False,))]
    for n in map(int, a.threads.split(",")):
        for B, H, proj, train, lengths in grid:
            r = case(n, B, H, proj, train, lengths, a.rounds)
            rows.append(r)
            print(f"threads={n} B={B:<4} proj={proj:<4} {r['mode']:<25} lengths {r['lengths']:<8}"
                  f" torch {r['ms']['torch.nn.LSTM']:9.3f} ms  compiled "
                  f"{r['ms']['rnnkit compiled']:9.3f} ms  x{r['compiled_over_torch']:.2f}"
                  f"  auto: {r['auto_picks']}", flush=True)
    return write_suite(a.json, "lstm_auto", "bench_lstm_auto.py", argv,
                       "wall, median of interleaved rounds", rows,
                       vendor_rule="slices" if compiled.ext().prefer_slices() else "packed")


if __name__ == "__main__":
    main()
