"""Where a fused LSTM-family scan's time goes on CPU: its GEMMs, called as the scans call them.

At B=32, T=100, I=128, H=256 (one thread, process CPU time, median of 7), times:

- the input projection, the 100 per-step recurrent products forward (with the added
  ``xp_t``) and backward, and the three weight/input-gradient GEMMs, all through
  :func:`rnnkit.kernels.fused._gemm.linear`/``weight_grad``: their sum is the floor of a
  scan that calls oneDNN per step, to set against torch.nn.LSTM's whole forward+backward;
- one recurrent product added to ``xp_t`` three ways: oneDNN's "add" post-op, adding after,
  and MKL's packed GEMM (``torch.ops.mkl._mkl_linear``) where torch has it;
- the recurrent products with the state transposed (``W_hh h^T``, a (4H, B) result), which
  oneDNN computes faster at B=32 than ``h W_hh^T``;
- a (32, 1024) sigmoid: torch against a numba loop (if numba is installed), whose ``exp``
  is scalar.

    python benchmarks/bench_step_gemm.py
"""
from __future__ import annotations

import math
import statistics
import time

import torch

from rnnkit.kernels.fused._gemm import linear, weight_grad
from rnnkit.runtime import tune_malloc


def _median_ms(f, rounds: int = 7, warm: int = 2) -> float:
    for _ in range(warm):
        f()
    out = []
    for _ in range(rounds):
        t0 = time.process_time()
        f()
        out.append(time.process_time() - t0)
    return statistics.median(out) * 1e3


def main() -> None:
    tune_malloc()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    T, B, I, H = 100, 32, 128, 256
    G = 4 * H
    x, h = torch.randn(T, B, I), torch.randn(B, H)
    W_ih, W_hh, b = torch.randn(G, I), torch.randn(G, H), torch.randn(G)
    W_hhT = W_hh.t().contiguous()
    A, Y = torch.randn(T, B, G), torch.randn(T, B, H)
    op = torch.ops.mkldnn._linear_pointwise
    parts = {
        "input projection (3200 x 128 x 1024)": lambda: linear(x.view(T * B, I), W_ih),
        "100 recurrent products forward, + xp_t": lambda: [linear(h, W_hh, None, A[t]) for t in range(T)],
        "100 recurrent products backward": lambda: [linear(A[t], W_hhT) for t in range(T)],
        "dW_hh (weight_grad)": lambda: weight_grad(A.view(T * B, G), Y.view(T * B, H)),
        "dx": lambda: linear(A.view(T * B, G), W_ih.t()),
        "dW_ih (weight_grad)": lambda: weight_grad(A.view(T * B, G), x.view(T * B, I)),
    }
    total = 0.0
    for name, f in parts.items():
        ms = _median_ms(f)
        total += ms
        print(f"{name:42s} {ms:7.1f} ms")
    print(f"{'sum: the GEMM floor of a per-step scan':42s} {total:7.1f} ms")
    lstm = torch.nn.LSTM(I, H)

    def torch_lstm():
        lstm.zero_grad(set_to_none=True)
        lstm(x)[0].sum().backward()

    print(f"{'torch.nn.LSTM forward+backward':42s} {_median_ms(torch_lstm):7.1f} ms")

    ways = {
        "oneDNN add post-op": lambda: [op.binary(h, A[t], W_hh, b, "add") for t in range(T)],
        "oneDNN, then add_": lambda: [op(h, W_hh, b, "none", [], "").add_(A[t]) for t in range(T)],
    }
    if hasattr(torch.ops.mkl, "_mkl_reorder_linear_weight"):
        packed = torch.ops.mkl._mkl_reorder_linear_weight(W_hh, B)
        ways["MKL packed, then add_"] = lambda: [
            torch.ops.mkl._mkl_linear(h, packed, W_hh, b, B).add_(A[t]) for t in range(T)]
    for name, f in ways.items():
        print(f"100 x (32,256)x(256,1024) + xp_t, {name:24s} {_median_ms(f):6.1f} ms")
    # the same products with the state transposed: (G, B) = W_hh h^T, (H, B) = W_hh^T da^T
    dA0 = A[0].contiguous()
    turns = {
        "forward, h W_hh^T (32, 1024)": lambda: [linear(h, W_hh) for _ in range(T)],
        "forward, W_hh h^T (1024, 32)": lambda: [linear(W_hh, h) for _ in range(T)],
        "backward, da W_hh (32, 256)": lambda: [linear(dA0, W_hhT) for _ in range(T)],
        "backward, W_hh^T da^T (256, 32)": lambda: [linear(W_hhT, dA0) for _ in range(T)],
    }
    for name, f in turns.items():
        print(f"100 recurrent products {name:32s} {_median_ms(f):6.1f} ms")

    z, out = torch.randn(B, G), torch.empty(B, G)
    per = _median_ms(lambda: [torch.sigmoid(z, out=out) for _ in range(100)]) * 10
    print(f"sigmoid of (32, 1024): torch {per:.1f} us", end="")
    try:
        from numba import njit
    except ImportError:
        print()
        return

    @njit(fastmath=True)
    def sig(a, o):
        af, of = a.ravel(), o.ravel()
        for i in range(af.size):
            of[i] = 1.0 / (1.0 + math.exp(-af[i]))

    zn, on = z.numpy(), out.numpy()
    sig(zn, on)
    per_nb = _median_ms(lambda: [sig(zn, on) for _ in range(100)]) * 10
    print(f", numba {per_nb:.1f} us")


if __name__ == "__main__":
    main()
