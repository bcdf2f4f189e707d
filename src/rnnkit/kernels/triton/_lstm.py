"""Per-step Triton kernels of the LSTM and LayerNorm-LSTM scans (driven by :mod:`._matrix`).

One program per batch row ``b`` holds the row's whole gate vector (4 blocks of
``BLOCK >= H`` units), so layer norm over the 4H gates and over ``c`` are
in-program reductions. Step t, after the GEMM ``raw = (m * h_{t-1}) W_hh^T``::

    rec = LN(raw; gamma_hh, b_hh)    or    raw + b_hh
    i, f, o = sigmoid(xp_t + rec)_{i,f,o};   g = tanh(xp_t + rec)_g
    c~ = f * c_{t-1} + i * g;        h~ = o * tanh(LN(c~; gamma_c, beta_c) or c~)
    c_t, h_t = zoneout(c~, c_{t-1}), zoneout(h~, h_{t-1});  rows past their length keep state

Saved (float32, for the backward): the gates ``A = (i, f, g, o)``, the states
``HS, CS`` and, with layer norm, the normalised ``x^`` of ``raw`` and of ``c~``
and both ``1/std``. The backward kernel of step t takes ``dh_t`` as
``carry + m * (draw_{t+1} W_hh) + dy_t`` (the GEMM done by the driver) and
writes ``dxp_t = da`` and ``draw_t`` (the gradient of ``raw``) for the next GEMM;
the bias and gain gradients accumulate per batch row in float32.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ._common import acc, carried_grad, sigmoid, tanh, zone_mix, zone_split

__all__ = ["lstm_fwd", "lstm_bwd"]


@triton.jit(do_not_specialize=["t", "ts"])  # one compile for every step
def lstm_fwd(XP, RAW, BHH, GHH, GC, BC, HS, CS, Y, HREC, M, ZH, ZC, A, XH, RS, CH, LEN,
             t, ts, B, H, zh_rate, zc_rate, eps,
             LN: tl.constexpr, HAS_B: tl.constexpr, HAS_M: tl.constexpr,
             ZH_MODE: tl.constexpr, ZC_MODE: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK)
    live = j < H
    valid = t < tl.load(LEN + b)
    r = RAW + b * 4 * H + j
    r_i = tl.load(r, mask=live, other=0.0).to(tl.float32)
    r_f = tl.load(r + H, mask=live, other=0.0).to(tl.float32)
    r_g = tl.load(r + 2 * H, mask=live, other=0.0).to(tl.float32)
    r_o = tl.load(r + 3 * H, mask=live, other=0.0).to(tl.float32)
    sv = (ts * B + b) * 4 * H + j  # saved (T', B, 4H) buffers
    if LN:  # over all 4H recurrent pre-activations
        mean = (tl.sum(r_i) + tl.sum(r_f) + tl.sum(r_g) + tl.sum(r_o)) / (4 * H)
        r_i = tl.where(live, r_i - mean, 0.0)
        r_f = tl.where(live, r_f - mean, 0.0)
        r_g = tl.where(live, r_g - mean, 0.0)
        r_o = tl.where(live, r_o - mean, 0.0)
        var = (tl.sum(r_i * r_i) + tl.sum(r_f * r_f) + tl.sum(r_g * r_g)
               + tl.sum(r_o * r_o)) / (4 * H)
        rstd = 1.0 / tl.sqrt(var + eps)
        r_i, r_f, r_g, r_o = r_i * rstd, r_f * rstd, r_g * rstd, r_o * rstd
        tl.store(XH + sv, r_i, mask=live)
        tl.store(XH + sv + H, r_f, mask=live)
        tl.store(XH + sv + 2 * H, r_g, mask=live)
        tl.store(XH + sv + 3 * H, r_o, mask=live)
        tl.store(RS + (ts * B + b) * 2, rstd)
        r_i *= tl.load(GHH + j, mask=live, other=0.0).to(tl.float32)
        r_f *= tl.load(GHH + H + j, mask=live, other=0.0).to(tl.float32)
        r_g *= tl.load(GHH + 2 * H + j, mask=live, other=0.0).to(tl.float32)
        r_o *= tl.load(GHH + 3 * H + j, mask=live, other=0.0).to(tl.float32)
    if HAS_B:
        r_i += tl.load(BHH + j, mask=live, other=0.0).to(tl.float32)
        r_f += tl.load(BHH + H + j, mask=live, other=0.0).to(tl.float32)
        r_g += tl.load(BHH + 2 * H + j, mask=live, other=0.0).to(tl.float32)
        r_o += tl.load(BHH + 3 * H + j, mask=live, other=0.0).to(tl.float32)
    x = XP + (t * B + b) * 4 * H + j
    i = sigmoid(tl.load(x, mask=live, other=0.0).to(tl.float32) + r_i)
    f = sigmoid(tl.load(x + H, mask=live, other=0.0).to(tl.float32) + r_f)
    g = tanh(tl.load(x + 2 * H, mask=live, other=0.0).to(tl.float32) + r_g)
    o = sigmoid(tl.load(x + 3 * H, mask=live, other=0.0).to(tl.float32) + r_o)
    tl.store(A + sv, i, mask=live)
    tl.store(A + sv + H, f, mask=live)
    tl.store(A + sv + 2 * H, g, mask=live)
    tl.store(A + sv + 3 * H, o, mask=live)
    s = (t * B + b) * H + j  # (T, B, H) buffers; HS/CS hold s_{t-1} at t, s_t at t + 1
    h_p = tl.load(HS + s, mask=live, other=0.0)
    c_p = tl.load(CS + s, mask=live, other=0.0)
    c = tl.where(live, f * c_p + i * g, 0.0)
    if LN:
        mean_c = tl.sum(c) / H
        c_hat = tl.where(live, c - mean_c, 0.0)
        rstd_c = 1.0 / tl.sqrt(tl.sum(c_hat * c_hat) / H + eps)
        c_hat = c_hat * rstd_c
        tl.store(CH + (ts * B + b) * H + j, c_hat, mask=live)
        tl.store(RS + (ts * B + b) * 2 + 1, rstd_c)
        ln_c = c_hat * tl.load(GC + j, mask=live, other=0.0).to(tl.float32)
        if HAS_B:
            ln_c += tl.load(BC + j, mask=live, other=0.0).to(tl.float32)
        h = o * tanh(ln_c)
    else:
        h = o * tanh(c)
    c = zone_mix(c, c_p, ZC, s, live, zc_rate, ZC_MODE)
    h = zone_mix(h, h_p, ZH, s, live, zh_rate, ZH_MODE)
    c = tl.where(valid, c, c_p)
    h = tl.where(valid, h, h_p)
    tl.store(CS + s + B * H, c, mask=live)
    tl.store(HS + s + B * H, h, mask=live)
    tl.store(Y + s, tl.where(valid, h, 0.0).to(Y.dtype.element_ty), mask=live)
    if HAS_M:
        h = h * tl.load(M + b * H + j, mask=live, other=0.0).to(tl.float32)
    tl.store(HREC + s + B * H, h.to(HREC.dtype.element_ty), mask=live)


@triton.jit(do_not_specialize=["t"])
def lstm_bwd(DY, DREC, M, DHC, DC, A, XH, RS, CH, CS, GHH, GC, BC, ZH, ZC, LEN,
             DXP, DRAW, DBH, DGH, DGC, DBC, t, B, H, zh_rate, zc_rate,
             LN: tl.constexpr, HAS_B: tl.constexpr, HAS_M: tl.constexpr,
             ZH_MODE: tl.constexpr, ZC_MODE: tl.constexpr, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK)
    live = j < H
    valid = t < tl.load(LEN + b)
    row = b * H + j
    s = (t * B + b) * H + j
    dh_in = carried_grad(DREC, M, DHC, row, live, HAS_M)
    dc_in = tl.load(DC + row, mask=live, other=0.0)
    dh = dh_in + tl.load(DY + s, mask=live, other=0.0).to(tl.float32)
    dh, keep_h = zone_split(dh, ZH, s, live, zh_rate, ZH_MODE)  # -> h~, -> h_{t-1}
    dc, keep_c = zone_split(dc_in, ZC, s, live, zc_rate, ZC_MODE)
    sv = (t * B + b) * 4 * H + j
    i = tl.load(A + sv, mask=live, other=0.0)
    f = tl.load(A + sv + H, mask=live, other=0.0)
    g = tl.load(A + sv + 2 * H, mask=live, other=0.0)
    o = tl.load(A + sv + 3 * H, mask=live, other=0.0)
    c_p = tl.load(CS + s, mask=live, other=0.0)
    if LN:
        c_hat = tl.load(CH + s, mask=live, other=0.0)
        gam_c = tl.load(GC + j, mask=live, other=0.0).to(tl.float32)
        ln_c = c_hat * gam_c
        if HAS_B:
            ln_c += tl.load(BC + j, mask=live, other=0.0).to(tl.float32)
        th = tanh(ln_c)
    else:
        th = tanh(f * c_p + i * g)
    d_o = dh * th
    d_pre = tl.where(live, dh * o * (1.0 - th * th), 0.0)  # d tanh's argument
    if LN:
        d_pre = tl.where(valid, d_pre, 0.0)
        acc(DGC, row, d_pre * c_hat, live)
        if HAS_B:
            acc(DBC, row, d_pre, live)
        d_hat = d_pre * gam_c
        rstd_c = tl.load(RS + (t * B + b) * 2 + 1)
        dc += rstd_c * (d_hat - tl.sum(d_hat) / H - c_hat * (tl.sum(d_hat * c_hat) / H))
    else:
        dc += d_pre
    da_i = tl.where(valid, dc * g * i * (1.0 - i), 0.0)
    da_f = tl.where(valid, dc * c_p * f * (1.0 - f), 0.0)
    da_g = tl.where(valid, dc * i * (1.0 - g * g), 0.0)
    da_o = tl.where(valid, d_o * o * (1.0 - o), 0.0)
    dx = DXP + (t * B + b) * 4 * H + j
    tl.store(dx, da_i.to(DXP.dtype.element_ty), mask=live)
    tl.store(dx + H, da_f.to(DXP.dtype.element_ty), mask=live)
    tl.store(dx + 2 * H, da_g.to(DXP.dtype.element_ty), mask=live)
    tl.store(dx + 3 * H, da_o.to(DXP.dtype.element_ty), mask=live)
    gb = b * 4 * H + j  # (B, 4H) per-row accumulators of the bias/gain gradients
    if HAS_B:
        acc(DBH, gb, da_i, live)
        acc(DBH, gb + H, da_f, live)
        acc(DBH, gb + 2 * H, da_g, live)
        acc(DBH, gb + 3 * H, da_o, live)
    if LN:  # back through x^ = (raw - mean) * rstd over all 4H
        x_i = tl.load(XH + sv, mask=live, other=0.0)
        x_f = tl.load(XH + sv + H, mask=live, other=0.0)
        x_g = tl.load(XH + sv + 2 * H, mask=live, other=0.0)
        x_o = tl.load(XH + sv + 3 * H, mask=live, other=0.0)
        acc(DGH, gb, da_i * x_i, live)
        acc(DGH, gb + H, da_f * x_f, live)
        acc(DGH, gb + 2 * H, da_g * x_g, live)
        acc(DGH, gb + 3 * H, da_o * x_o, live)
        e_i = da_i * tl.load(GHH + j, mask=live, other=0.0).to(tl.float32)
        e_f = da_f * tl.load(GHH + H + j, mask=live, other=0.0).to(tl.float32)
        e_g = da_g * tl.load(GHH + 2 * H + j, mask=live, other=0.0).to(tl.float32)
        e_o = da_o * tl.load(GHH + 3 * H + j, mask=live, other=0.0).to(tl.float32)
        n = 4 * H
        mean_e = (tl.sum(e_i) + tl.sum(e_f) + tl.sum(e_g) + tl.sum(e_o)) / n
        mean_ex = (tl.sum(e_i * x_i) + tl.sum(e_f * x_f) + tl.sum(e_g * x_g)
                   + tl.sum(e_o * x_o)) / n
        rstd = tl.load(RS + (t * B + b) * 2)
        da_i = rstd * (e_i - mean_e - x_i * mean_ex)
        da_f = rstd * (e_f - mean_e - x_f * mean_ex)
        da_g = rstd * (e_g - mean_e - x_g * mean_ex)
        da_o = rstd * (e_o - mean_e - x_o * mean_ex)
    dr = DRAW + (t * B + b) * 4 * H + j
    tl.store(dr, da_i.to(DRAW.dtype.element_ty), mask=live)
    tl.store(dr + H, da_f.to(DRAW.dtype.element_ty), mask=live)
    tl.store(dr + 2 * H, da_g.to(DRAW.dtype.element_ty), mask=live)
    tl.store(dr + 3 * H, da_o.to(DRAW.dtype.element_ty), mask=live)
    tl.store(DHC + row, tl.where(valid, keep_h, dh_in), mask=live)
    tl.store(DC + row, tl.where(valid, dc * f + keep_c, dc_in), mask=live)
