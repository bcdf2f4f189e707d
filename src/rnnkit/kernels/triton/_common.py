"""Device helpers shared by the Triton kernels, and the launch-size heuristics.

Imported only when a Triton kernel runs (``import triton`` happens here), never at
``import rnnkit``. Every kernel computes in float32 whatever the tensors' dtype:
loads are converted with ``.to(tl.float32)``, stores back to the buffer's dtype.
"""
from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["sigmoid", "tanh", "softplus", "zone_mix", "zone_split", "scan_block", "row_block",
           "row_warps"]


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def tanh(x):
    # 2 sigmoid(2x) - 1, in float32: absolute error ~1e-7, finite for any x
    return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0


@triton.jit
def softplus(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|))."""
    return tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))


def scan_block(B: int, H: int, target_programs: int = 264) -> int:
    """Hidden units per program of an elementwise scan (a power of two, 16..256).

    The scans are latency-bound (one dependent step after another), so we want
    many programs in flight: the largest block that still gives about two
    programs per SM of a 132-SM GPU, but never wider than H needs.
    """
    full = max(16, triton.next_power_of_2(H))
    block = min(256, full)
    while block > 32 and B * triton.cdiv(H, block) < target_programs:
        block //= 2
    return block


def row_block(n: int) -> int:
    """A power of two >= n: one program holds a whole row of n hidden units."""
    return max(16, triton.next_power_of_2(n))


def row_warps(block: int, gates: int) -> int:
    """Warps for a program holding ``gates`` vectors of ``block`` units (~8 fp32 each/thread)."""
    return min(16, triton.next_power_of_2(max(1, block * gates // 256)))


@triton.jit
def carried_grad(DREC, M, DHC, row, live, HAS_M: tl.constexpr):
    """The gradient reaching ``h_t`` from step t+1: the carried part plus the recurrent GEMM's
    ``d(m h_t)`` (times the recurrent-dropout mask ``m`` where there is one)."""
    d_rec = tl.load(DREC + row, mask=live, other=0.0).to(tl.float32)
    if HAS_M:
        d_rec *= tl.load(M + row, mask=live, other=0.0).to(tl.float32)
    return tl.load(DHC + row, mask=live, other=0.0) + d_rec


@triton.jit
def acc(P, off, v, live):
    """``P[off] += v`` over the live lanes (a per-row gradient accumulator)."""
    tl.store(P + off, tl.load(P + off, mask=live, other=0.0) + v, mask=live)


@triton.jit
def zone_mix(new, old, Z, off, live, rate, MODE: tl.constexpr):
    """Zoneout of a state: ``new`` (MODE 0), ``rate*old + (1-rate)*new`` (1), keep-mask pick (2).

    MODE 2 reads the 0/1 keep indicators at ``Z + off``; ``where`` keeps it exact.
    """
    if MODE == 1:
        new = rate * old + (1.0 - rate) * new
    elif MODE == 2:
        keep = tl.load(Z + off, mask=live, other=0.0).to(tl.float32)
        new = tl.where(keep > 0.5, old, new)
    return new


@triton.jit
def zone_split(d, Z, off, live, rate, MODE: tl.constexpr):
    """The gradient ``d`` of a zoned state split into (to the fresh state, to the kept one)."""
    if MODE == 1:
        fresh = (1.0 - rate) * d
        kept = rate * d
    elif MODE == 2:
        keep = tl.load(Z + off, mask=live, other=0.0).to(tl.float32) > 0.5
        fresh = tl.where(keep, 0.0, d)
        kept = tl.where(keep, d, 0.0)
    else:
        fresh = d
        kept = tl.zeros_like(d)
    return fresh, kept
