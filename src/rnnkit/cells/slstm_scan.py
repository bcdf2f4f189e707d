"""The sLSTM over all T steps with a hand-written backward through time.

The sLSTM's recurrence is nonlinear, so it has no parallel form: it runs step by step. Through
autograd each step records about twenty nodes and its backward replays them one by one, and
the per-head recurrent product is an einsum. :class:`_SLSTMScan` runs the same steps without
a graph, with the block-diagonal recurrent weights as one dense ``(H, 4H)`` matrix (one
``addmm`` per step), keeps what the backward needs (the gate activations, ``c``, ``n`` and
the max's branch) and runs the backward through time by hand (:mod:`rnnkit.cells.xlstm` has
the forward equations). With ``A_f = log f + m_{t-1} - m_t`` and ``A_i = i~ - m_t``, so that
``f' = exp(A_f)`` and ``i' = exp(A_i)``, per step from the last::

    dc += dh o / n          dn -= dh o c / n^2        do = dh c / n
    df' = dc c_{t-1} + dn n_{t-1}     di' = dc z + dn     dz = dc i'
    dA_f = df' f'           dA_i = di' i'
    dm = dm_t - dA_f - dA_i, split by the max m_t = max(log f + m_{t-1}, i~): all to the
         larger side, half each at a tie (as ``torch.maximum``)
    d log f = dA_f + dm_a   di~ = dA_i + dm_b   dm_{t-1} = dA_f + dm_a
    dc_{t-1} = dc f'        dn_{t-1} = dn f'    dh_{t-1} = dg W^T (+ the output's gradient)

with ``dg = [dz (1 - z^2), di~, d log f * sigmoid(-g_f) (or d log f), do o (1 - o)]``; the
recurrent weights' gradient is one GEMM over all T at the end. A skipped step (``mask``
False) keeps its state and passes every gradient through. Forward and backward in float64
equal autograd through :meth:`~rnnkit.cells.xlstm.SLSTMCell.step` to rounding (the tests).

As the fused kernels, a ``create_graph=True`` backward (or one vmapped over its gradients) and
``torch.func``/forward-mode AD run the step-by-step form through autograd instead
(:func:`stepped`), so every order of derivative still works.

Shapes: ``T`` time, ``B`` batch, ``H`` hidden, ``nh`` heads of ``d = H / nh``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import forward_ad_active, functorch_active

__all__ = ["slstm_scan", "stepped"]


def _dense(R: Tensor) -> Tensor:
    """Block-diagonal ``R`` (4, nh, d, d) as the dense (H, 4H) ``W`` with ``R h = h @ W``."""
    _, nh, d, _ = R.shape
    W = R.new_zeros(nh, d, 4, nh, d)  # (head j, input e, gate k, head j', output)
    idx = torch.arange(nh, device=R.device)
    W[idx, :, :, idx, :] = R.permute(1, 3, 0, 2)  # (j, e, k, out) = R[k, j, out, e]
    return W.reshape(nh * d, 4 * nh * d)


def _block_diagonal(dW: Tensor, nh: int) -> Tensor:
    """The gradient of ``R`` from that of its dense form: (H, 4H) -> (4, nh, d, d)."""
    d = dW.shape[0] // nh
    W = dW.reshape(nh, d, 4, nh, d)
    idx = torch.arange(nh, device=dW.device)
    return W[idx, :, :, idx, :].permute(2, 0, 3, 1)  # (j, e, k, out) -> (k, j, out, e)


def stepped(xp, h, c, n, m, R, mask, sigmoid_forget: bool):
    """The sLSTM step by step in differentiable ops: ``ys`` (T, B, H) and ``(h, c, n, m)``."""
    W, ys = _dense(R), []
    for t in range(xp.shape[0]):
        z_, i_, f_, o_ = torch.addmm(xp[t], h, W).chunk(4, dim=-1)
        a = (F.logsigmoid(f_) if sigmoid_forget else f_) + m
        m_new = torch.maximum(a, i_)
        ip, fp = torch.exp(i_ - m_new), torch.exp(a - m_new)
        c_new = fp * c + ip * torch.tanh(z_)
        n_new = fp * n + ip
        h_new = torch.sigmoid(o_) * c_new / n_new
        if mask is None:
            h, c, n, m, y = h_new, c_new, n_new, m_new, h_new
        else:
            live = mask[t]
            h, c, n, m = (torch.where(live, new, old) for new, old in
                          ((h_new, h), (c_new, c), (n_new, n), (m_new, m)))
            y = torch.where(live, h_new, torch.zeros((), dtype=h.dtype, device=h.device))
        ys.append(y)
    return torch.stack(ys), h, c, n, m


class _SLSTMScan(torch.autograd.Function):
    """``(ys, h_T, c_T, n_T, m_T) = sLSTM(xp, h0, c0, n0, m0, R)``; see the module docstring."""

    @staticmethod
    def forward(ctx, xp, h0, c0, n0, m0, R, mask, sigmoid_forget):
        T, B, G = xp.shape
        H = G // 4
        W = _dense(R)
        Z, I, Fp, O, SF = (xp.new_empty(T, B, H) for _ in range(5))  # tanh z, i', f', o, dlogf
        Cs, Ns = xp.new_empty(T + 1, B, H), xp.new_empty(T + 1, B, H)  # c, n; s_0 first
        Hs = xp.new_empty(T + 1, B, H)
        side = torch.empty(T, B, H, dtype=xp.dtype, device=xp.device)  # sign(log f + m - i~)
        Y = xp.new_empty(T, B, H)
        Hs[0], Cs[0], Ns[0] = h0, c0, n0
        h, c, n, m = h0, c0, n0, m0
        for t in range(T):
            z_, i_, f_, o_ = torch.addmm(xp[t], h, W).chunk(4, dim=-1)
            if sigmoid_forget:
                a = F.logsigmoid(f_) + m
                torch.sigmoid(-f_, out=SF[t])  # d log sigmoid(f) / df
            else:
                a = f_ + m
            m_new = torch.maximum(a, i_)
            torch.sign(a - i_, out=side[t])
            torch.exp(i_ - m_new, out=I[t])
            torch.exp(a - m_new, out=Fp[t])
            torch.tanh(z_, out=Z[t])
            torch.sigmoid(o_, out=O[t])
            c_new = torch.addcmul(Fp[t] * c, I[t], Z[t])
            n_new = torch.addcmul(I[t], Fp[t], n)
            h_new = O[t] * c_new / n_new
            if mask is None:
                Y[t] = h_new
            else:
                live = mask[t]
                Y[t] = h_new.masked_fill(~live, 0.0)
                h_new, c_new = torch.where(live, h_new, h), torch.where(live, c_new, c)
                n_new, m_new = torch.where(live, n_new, n), torch.where(live, m_new, m)
            h, c, n, m = h_new, c_new, n_new, m_new
            Hs[t + 1], Cs[t + 1], Ns[t + 1] = h, c, n
        ctx.sigmoid_forget, ctx.has_mask = sigmoid_forget, mask is not None
        ctx.save_for_backward(xp, h0, c0, n0, m0, R, W, Z, I, Fp, O, SF, Hs, Cs, Ns, side,
                              mask if mask is not None else xp.new_empty(0))
        return Y, h, c, n, m

    @staticmethod
    def backward(ctx, dY, dh, dc, dn, dm):
        (xp, h0, c0, n0, m0, R, W, Z, I, Fp, O, SF, Hs, Cs, Ns, side,
         mask) = ctx.saved_tensors
        mask = mask if ctx.has_mask else None
        needs = ctx.needs_input_grad[:6]
        batched = any(g is not None and torch._C._dispatch_isTensorSubclassLike(g)
                      for g in (dY, dh, dc, dn, dm))  # vmap over the backward: no out= there
        if torch.is_grad_enabled() or batched:  # create_graph=True: the stepped form's
            with torch.enable_grad():
                outs = stepped(xp, h0, c0, n0, m0, R, mask, ctx.sigmoid_forget)
            pairs = [(o, g) for o, g in zip(outs, (dY, dh, dc, dn, dm)) if g is not None]
            wrt = [t for t, need in zip((xp, h0, c0, n0, m0, R), needs) if need]
            got = iter(torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs],
                                           create_graph=True, allow_unused=True,
                                           materialize_grads=True))
            return (*(next(got) if need else None for need in needs), None, None)
        T = xp.shape[0]
        zero = torch.zeros_like(h0)
        dh, dc, dn, dm = (zero if g is None else g for g in (dh, dc, dn, dm))
        dG = torch.empty_like(xp)  # (T, B, 4H): dxp
        Wt = W.t()
        for t in range(T - 1, -1, -1):
            dht = dh if dY is None else dh + dY[t]
            o, z, ip, fp = O[t], Z[t], I[t], Fp[t]
            n_t = Ns[t + 1]
            r = Cs[t + 1] / n_t
            dct = torch.addcmul(dc, dht, o / n_t)
            dnt = dn - dht * o * r / n_t
            dAf = (dct * Cs[t] + dnt * Ns[t]) * fp
            dAi = (dct * z + dnt) * ip
            w_a = (side[t] + 1) * 0.5  # 1 where log f + m won the max, 0 where i~ did, 1/2 ties
            dmt = dm - dAf - dAi
            da = dAf + dmt * w_a  # d(log f + m_{t-1})
            di = dAi + dmt * (1 - w_a)
            dg = dG[t]
            dz, dgi, dgf, do_ = dg.chunk(4, dim=-1)
            torch.mul(dct * ip, 1 - z * z, out=dz)
            dgi.copy_(di)
            if ctx.sigmoid_forget:
                torch.mul(da, SF[t], out=dgf)
            else:
                dgf.copy_(da)
            torch.mul(dht * r, o * (1 - o), out=do_)
            if mask is not None:
                dg.masked_fill_(~mask[t], 0.0)
            dh_prev, dc_prev, dn_prev = dg @ Wt, dct * fp, dnt * fp
            if mask is not None:
                live = mask[t]
                dh_prev = torch.where(live, dh_prev, dh)
                dc_prev, dn_prev = torch.where(live, dc_prev, dc), torch.where(live, dn_prev, dn)
                da = torch.where(live, da, dm)
            dh, dc, dn, dm = dh_prev, dc_prev, dn_prev, da
        dR = None
        if needs[5]:
            B, H = h0.shape
            dW = Hs[:-1].reshape(T * B, H).t() @ dG.reshape(T * B, 4 * H)  # sum_t h^T dg
            dR = _block_diagonal(dW, R.shape[1])
        return (dG if needs[0] else None, dh, dc, dn, dm, dR, None, None)


def slstm_scan(xp: Tensor, state: tuple, R: Tensor, mask: Tensor | None, sigmoid_forget: bool):
    """All T sLSTM steps: ``xp`` (T, B, 4H) (``W x + b``), ``state`` ``(h, c, n, m)`` each
    (B, H), ``R`` (4, nh, d, d), ``mask`` (T, B, 1) bool or None -> ``ys`` (T, B, H) and the
    last state."""
    if functorch_active() or forward_ad_active():
        ys, *last = stepped(xp, *state, R, mask, sigmoid_forget)
    elif not (torch.is_grad_enabled() and any(t.requires_grad for t in (xp, *state, R))):
        with torch.no_grad():  # no backward: keep nothing for it (inference, long sequences)
            ys, *last = stepped(xp, *state, R, mask, sigmoid_forget)
    else:
        ys, *last = _SLSTMScan.apply(xp, *state, R, mask, sigmoid_forget)
    return ys, tuple(last)
