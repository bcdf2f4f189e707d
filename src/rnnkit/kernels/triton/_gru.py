"""Per-step Triton kernels of the GRU and LayerNorm-GRU scans (driven by :mod:`._matrix`).

torch's reset-after GRU; one program per batch row holds its 3 gate blocks.
Step t, after the GEMM ``raw = (m * h_{t-1}) W_hh^T``::

    gh = LN(raw; gamma_hh, b_hh)    or    raw + b_hh                 (3H: r, z, n)
    r = sigmoid(xp_r + gh_r);  z = sigmoid(xp_z + gh_z);  n = tanh(xp_n + r * gh_n)
    h~ = (1 - z) * n + z * h_{t-1}         (the carried h_{t-1}: recurrent dropout
    h_t = zoneout(h~, h_{t-1})              acts only inside the GEMM, as in the loop)

Saved (float32): ``A = (r, z, n, gh_n)``, the states ``HS`` and, with layer
norm, ``x^`` of ``raw`` and ``1/std``. Backward of step t, from
``dh_t = carry + m * (draw_{t+1} W_hh) + dy_t``::

    dn = dh~ (1 - z);  dz = dh~ (h_{t-1} - n);  da_n = dn (1 - n^2)
    dxp = (da_n gh_n r(1-r), dz z(1-z), da_n);   dgh = (dxp_r, dxp_z, da_n r)
    draw = LN backward of dgh (or dgh);   carry = dh~ z (+ the zoned-out part of dh_t)
"""
from __future__ import annotations

import triton
import triton.language as tl

from ._common import acc, carried_grad, sigmoid, tanh, zone_mix, zone_split

__all__ = ["gru_fwd", "gru_bwd"]


@triton.jit(do_not_specialize=["t", "ts"])  # one compile for every step
def gru_fwd(XP, RAW, BHH, GHH, HS, Y, HREC, M, ZH, A, XH, RS, LEN,
            t, ts, B, H, zh_rate, eps,
            LN: tl.constexpr, HAS_B: tl.constexpr, HAS_M: tl.constexpr,
            ZH_MODE: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK)
    live = j < H
    valid = t < tl.load(LEN + b)
    r = RAW + b * 3 * H + j
    g_r = tl.load(r, mask=live, other=0.0).to(tl.float32)
    g_z = tl.load(r + H, mask=live, other=0.0).to(tl.float32)
    g_n = tl.load(r + 2 * H, mask=live, other=0.0).to(tl.float32)
    if LN:  # over all 3H recurrent pre-activations
        sx = (ts * B + b) * 3 * H + j
        mean = (tl.sum(g_r) + tl.sum(g_z) + tl.sum(g_n)) / (3 * H)
        g_r = tl.where(live, g_r - mean, 0.0)
        g_z = tl.where(live, g_z - mean, 0.0)
        g_n = tl.where(live, g_n - mean, 0.0)
        var = (tl.sum(g_r * g_r) + tl.sum(g_z * g_z) + tl.sum(g_n * g_n)) / (3 * H)
        rstd = 1.0 / tl.sqrt(var + eps)
        g_r, g_z, g_n = g_r * rstd, g_z * rstd, g_n * rstd
        tl.store(XH + sx, g_r, mask=live)
        tl.store(XH + sx + H, g_z, mask=live)
        tl.store(XH + sx + 2 * H, g_n, mask=live)
        tl.store(RS + ts * B + b, rstd)
        g_r *= tl.load(GHH + j, mask=live, other=0.0).to(tl.float32)
        g_z *= tl.load(GHH + H + j, mask=live, other=0.0).to(tl.float32)
        g_n *= tl.load(GHH + 2 * H + j, mask=live, other=0.0).to(tl.float32)
    if HAS_B:
        g_r += tl.load(BHH + j, mask=live, other=0.0).to(tl.float32)
        g_z += tl.load(BHH + H + j, mask=live, other=0.0).to(tl.float32)
        g_n += tl.load(BHH + 2 * H + j, mask=live, other=0.0).to(tl.float32)
    x = XP + (t * B + b) * 3 * H + j
    rg = sigmoid(tl.load(x, mask=live, other=0.0).to(tl.float32) + g_r)
    z = sigmoid(tl.load(x + H, mask=live, other=0.0).to(tl.float32) + g_z)
    n = tanh(tl.load(x + 2 * H, mask=live, other=0.0).to(tl.float32) + rg * g_n)
    sv = (ts * B + b) * 4 * H + j
    tl.store(A + sv, rg, mask=live)
    tl.store(A + sv + H, z, mask=live)
    tl.store(A + sv + 2 * H, n, mask=live)
    tl.store(A + sv + 3 * H, g_n, mask=live)
    s = (t * B + b) * H + j  # HS holds h_{t-1} at t, h_t at t + 1
    h_p = tl.load(HS + s, mask=live, other=0.0)
    h = (1.0 - z) * n + z * h_p
    h = zone_mix(h, h_p, ZH, s, live, zh_rate, ZH_MODE)
    h = tl.where(valid, h, h_p)
    tl.store(HS + s + B * H, h, mask=live)
    tl.store(Y + s, tl.where(valid, h, 0.0).to(Y.dtype.element_ty), mask=live)
    if HAS_M:
        h = h * tl.load(M + b * H + j, mask=live, other=0.0).to(tl.float32)
    tl.store(HREC + s + B * H, h.to(HREC.dtype.element_ty), mask=live)


@triton.jit(do_not_specialize=["t"])
def gru_bwd(DY, DREC, M, DHC, A, XH, RS, HS, GHH, ZH, LEN, DXP, DRAW, DBH, DGH,
            t, B, H, zh_rate,
            LN: tl.constexpr, HAS_B: tl.constexpr, HAS_M: tl.constexpr,
            ZH_MODE: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK)
    live = j < H
    valid = t < tl.load(LEN + b)
    row = b * H + j
    s = (t * B + b) * H + j
    dh_in = carried_grad(DREC, M, DHC, row, live, HAS_M)
    dh = dh_in + tl.load(DY + s, mask=live, other=0.0).to(tl.float32)
    dh, keep = zone_split(dh, ZH, s, live, zh_rate, ZH_MODE)  # -> h~, -> h_{t-1}
    sv = (t * B + b) * 4 * H + j
    rg = tl.load(A + sv, mask=live, other=0.0)
    z = tl.load(A + sv + H, mask=live, other=0.0)
    n = tl.load(A + sv + 2 * H, mask=live, other=0.0)
    g_n = tl.load(A + sv + 3 * H, mask=live, other=0.0)
    h_p = tl.load(HS + s, mask=live, other=0.0)
    da_n = tl.where(valid, dh * (1.0 - z) * (1.0 - n * n), 0.0)
    da_z = tl.where(valid, dh * (h_p - n) * z * (1.0 - z), 0.0)
    da_r = da_n * g_n * rg * (1.0 - rg)
    dg_n = da_n * rg  # d gh_n
    dx = DXP + (t * B + b) * 3 * H + j
    tl.store(dx, da_r.to(DXP.dtype.element_ty), mask=live)
    tl.store(dx + H, da_z.to(DXP.dtype.element_ty), mask=live)
    tl.store(dx + 2 * H, da_n.to(DXP.dtype.element_ty), mask=live)
    gb = b * 3 * H + j  # (B, 3H) per-row accumulators of the bias/gain gradients
    if HAS_B:
        acc(DBH, gb, da_r, live)
        acc(DBH, gb + H, da_z, live)
        acc(DBH, gb + 2 * H, dg_n, live)
    if LN:  # back through x^ = (raw - mean) * rstd over all 3H
        sx = (t * B + b) * 3 * H + j
        x_r = tl.load(XH + sx, mask=live, other=0.0)
        x_z = tl.load(XH + sx + H, mask=live, other=0.0)
        x_n = tl.load(XH + sx + 2 * H, mask=live, other=0.0)
        acc(DGH, gb, da_r * x_r, live)
        acc(DGH, gb + H, da_z * x_z, live)
        acc(DGH, gb + 2 * H, dg_n * x_n, live)
        e_r = da_r * tl.load(GHH + j, mask=live, other=0.0).to(tl.float32)
        e_z = da_z * tl.load(GHH + H + j, mask=live, other=0.0).to(tl.float32)
        e_n = dg_n * tl.load(GHH + 2 * H + j, mask=live, other=0.0).to(tl.float32)
        mean_e = (tl.sum(e_r) + tl.sum(e_z) + tl.sum(e_n)) / (3 * H)
        mean_ex = (tl.sum(e_r * x_r) + tl.sum(e_z * x_z) + tl.sum(e_n * x_n)) / (3 * H)
        rstd = tl.load(RS + t * B + b)
        da_r = rstd * (e_r - mean_e - x_r * mean_ex)
        da_z = rstd * (e_z - mean_e - x_z * mean_ex)
        dg_n = rstd * (e_n - mean_e - x_n * mean_ex)
    dr = DRAW + (t * B + b) * 3 * H + j
    tl.store(dr, da_r.to(DRAW.dtype.element_ty), mask=live)
    tl.store(dr + H, da_z.to(DRAW.dtype.element_ty), mask=live)
    tl.store(dr + 2 * H, dg_n.to(DRAW.dtype.element_ty), mask=live)
    tl.store(DHC + row, tl.where(valid, dh * z + keep, dh_in), mask=live)
