"""The xLSTM cells (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory"): sLSTM, mLSTM.

Both gate the input exponentially and carry a stabiliser ``m`` (a running log-scale) so that
``exp`` never overflows; ``m`` cancels in every output, so the cells compute exactly the
paper's unstabilised equations (up to rounding).

**sLSTM** (paper section 2.2): scalar memory, a normaliser ``n``, recurrent weights that are
block-diagonal per head (``num_heads`` heads of size ``d = H / num_heads``):

    g       = W x_t + R h_{t-1} + b             blocks z, i, f, o, each (B, H)
    z = tanh(g_z)   o = sigmoid(g_o)   i~ = g_i   log f = log sigmoid(g_f)  ("exp": g_f)
    m_t     = max(log f + m_{t-1}, i~)
    i'      = exp(i~ - m_t)                      f' = exp(log f + m_{t-1} - m_t)
    c_t     = f' c_{t-1} + i' z                  n_t = f' n_{t-1} + i'
    h_t     = o * c_t / n_t

``(R h)`` for gate block k and head j is ``h[head j] @ weight_hh[k, j].T``. Parameters:
``weight_ih (4H, I)`` (row blocks z, i, f, o), ``weight_hh (4, num_heads, d, d)``,
``bias (4H,)``. State ``(h, c, n, m)``, each (B, H); output ``h``.

**mLSTM** (paper section 2.3): a matrix memory per head; no recurrent weights, every gate reads
only the input (the input part is one GEMM, :meth:`MLSTMCell.project`):

    q, k, v, i~, f~, o~ = W x_t + b              q, k, v (B, nh, d); i~, f~ (B, nh); o~ (B, H)
    k       = k / sqrt(d)                        log f = log sigmoid(f~)  ("exp": f~)
    m_t     = max(log f + m_{t-1}, i~)
    i'      = exp(i~ - m_t)                      f' = exp(log f + m_{t-1} - m_t)
    C_t     = f' C_{t-1} + i' v k^T              n_t = f' n_{t-1} + i' k        (per head)
    h_t     = sigmoid(o~) * C_t q / max(|n_t . q|, exp(-m_t))

(departure: the paper scales ``W_k x`` and adds its bias after, ``W_k x / sqrt(d) + b_k``;
here the bias is scaled too, a reparametrisation of the same family).

(the paper's ``C~ q / max(|n~ . q|, 1)`` with ``C~ = exp(m) C``). Parameters: ``weight_ih
(3H + 2 nh + H, I)`` (row blocks q, k, v (H each), i~ (nh), f~ (nh), o (H)), ``bias`` as long.
State ``(C, n, m)``: ``C`` (B, nh*d*d), row-major (head, v index, k index), ``n`` (B, H), ``m``
(B, nh); output ``h`` (B, H).

**mLSTM, chunkwise** (the paper's appendix "parallel formulation", chunked as the official
``mlstm_kernels``): ``mode="parallel"`` (default) runs :meth:`MLSTMCell.scan`,
``"sequential"`` steps. With ``F_t = sum_{s<=t} log f_s`` (from a chunk's start), the
unstabilised weight of step ``s`` in ``C_t`` is ``exp(F_t - F_s + i~_s)`` and that of the
incoming ``C_0`` is ``exp(F_t + m_0)``, so the recurrence's stabiliser is a cumulative max,

    g_s     = i~_s - F_s                         m_t = F_t + max(m_0, max_{s<=t} g_s)
    h_t     = o_t * (sum_s W_ts (q_t . k_s) v_s + e_t C_0 q_t)
              / max(|sum_s W_ts (q_t . k_s) + e_t n_0 . q_t|, exp(-m_t))
    W_ts    = exp(i~_s - m_t + F_t - F_s)  (s <= t)      e_t = exp(m_0 - m_t + F_t)

all ``L`` steps of every chunk at once (``L x L`` matrices, ``L = chunk_size``), and a loop over
the ``T / L`` chunks carries ``(C, n, m)``, with ``m`` from the same formula at the chunk's
last step. Every exponent is <= 0 and the denominator is the step's own, so outputs and final
state equal stepping to rounding. A skipped (masked) step has ``log f = 0`` and ``i~ = -1e30``
(weight 0, no gradient). Gradients are autograd's through these operations, ``m`` included;
they equal the step's except at exact ties of the max: the step's ``torch.maximum`` halves
the gradient at each tie, as here at a tie of ``m_0`` with the ``g``'s, but a tie between two
``g``'s sends it all to the later step (``torch.cummax``). Only a loss on the final ``m`` (or
on ``C, n`` through it) sees that: the outputs do not depend on ``m`` at all.

Gradients: autograd through every operation, ``m`` included, so the gradient is the exact one
of the stabilised formula; as ``m`` cancels, that is the unstabilised formula's. The max is
``torch.maximum``, whose gradient at a tie goes half to each side (so does the reference). The
official xLSTM CUDA kernel treats ``m`` as a constant in its backward: the same gradient for
``h`` (with every ``m_t`` held fixed the identities ``c = exp(-m) c~`` still hold), but no
gradient reaches ``m_0`` and a loss on the final ``(c, n, m)`` sees a different one.

Zero state: with ``c_0 = n_0 = m_0 = 0`` the first step gives ``n_1 = i' > 0``, so ``h_1`` is
finite, unless ``i'`` underflows: ``i~ - max(log f, i~)`` below about -104 (float32; -745 in
float64) makes ``n_1 = 0`` and ``h_1`` NaN. The official code sets ``m_1 = i~`` when ``n = 0``
to avoid this; we keep the one formula (the other changes ``m``'s gradient at the first step).
The mLSTM's denominator is at least ``exp(-m_t) > 0`` in exact arithmetic.

Zoneout (:mod:`rnnkit.layers.regularizers`) mixes each state tensor unit by unit; for these
cells that mixes the stabilised ``c, n, m`` independently, a heuristic (the stabilised
tensors share the scale ``exp(m)``); ``zoneout=(p_h, 0)`` zones out only sLSTM's ``h``.

Initialisation: ``weight_ih`` and ``bias`` as ``nn.Linear`` (``U(+-1/sqrt(I))``), sLSTM's
``weight_hh`` ``U(+-1/sqrt(d))``. Not copied from the paper's code: zero recurrent weights, a
"power law" forget bias per head unit (sLSTM), forget bias ``linspace(3, 6)`` over heads and
input bias ``N(0, 0.1)`` with zero gate weights (mLSTM), and its blocks' small-init
projections; ``forget_bias=`` sets sLSTM's f block (``forget_gate = 2``); the mLSTM's forget
pre-activation has ``nh`` rows, so set ``bias_l{k}[3H + nh: 3H + 2 nh]`` directly.

Shapes: ``B`` batch, ``T`` time, ``I`` input, ``H`` hidden (the output), ``nh`` heads,
``d = H / nh`` head size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State, check_int, float32_at_least
from .slstm_scan import slstm_scan

__all__ = ["SLSTMCell", "MLSTMCell", "mlstm_chunkwise", "mlstm_step"]

FORGET = ("sigmoid", "exp")


def _check_heads(num_heads, hidden_size: int) -> int:
    nh = check_int("num_heads", num_heads)
    if nh <= 0 or hidden_size % nh:
        raise ValueError(f"num_heads: expected a positive divisor of hidden_size={hidden_size}, "
                         f"got {nh}")
    return nh


def _check_forget(forget) -> str:
    if forget not in FORGET:
        raise ValueError(f"forget: expected one of {FORGET}, got {forget!r}")
    return forget


def _stabilised_gates(i_: Tensor, log_f: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(i', f', m_t)`` from ``i~``, ``log f`` and ``m_{t-1}``, all the same shape."""
    a = log_f + m
    m = torch.maximum(a, i_)  # a tie sends half the gradient each way
    return torch.exp(i_ - m), torch.exp(a - m), m


_NEG = -1e30  # i~ of a skipped step: exp(_NEG - m + F) is 0 in float32 and float64


def _chunks(t: Tensor, N: int, L: int) -> Tensor:
    """(N*L, B, nh, ...) time-major -> (B, nh, N, L, ...) chunk-major."""
    t = t.reshape(N, L, *t.shape[1:])
    return t.permute(2, 3, 0, 1, *range(4, t.dim()))


def mlstm_chunkwise(q: Tensor, k: Tensor, v: Tensor, i_: Tensor, log_f: Tensor,
                    state: tuple[Tensor, Tensor, Tensor], mask: Tensor | None = None,
                    chunk: int = 64) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """The mLSTM's ``C_t q_t / max(|n_t . q_t|, exp(-m_t))`` for all T steps, chunkwise.

    ``n`` is carried as one more row of ``C`` (the memory of ``v = 1``): ``[C; n]`` (d+1, d).

    Args:
        q, k, v: (T, B, nh, d), ``k`` already scaled by ``1 / sqrt(d)``.
        i_, log_f: (T, B, nh): ``i~`` and ``log f``.
        state: ``C`` (B, nh, d, d) (v index, k index), ``n`` (B, nh, d), ``m`` (B, nh).
        mask: (T, B, 1) bool or None; False skips the step (state kept).
        chunk: steps per chunk (L).
    Returns:
        (T, B, nh, d) (before the output gate; skipped steps not zeroed) and the final
        ``(C, n, m)``.
    """
    T, B, nh, d = q.shape
    L = max(1, min(chunk, T))
    N = -(-T // L)
    skip = None if mask is None else ~mask  # (T, B, 1)
    if skip is not None:
        log_f = log_f.masked_fill(skip, 0.0)
    v = torch.cat([v, v.new_ones(T, B, nh, 1)], dim=-1)  # (T, B, nh, d+1): [v, 1]
    if N * L > T:  # pad with skipped steps to whole chunks
        pad = lambda t: torch.cat([t, t.new_zeros(N * L - T, *t.shape[1:])])  # noqa: E731
        q, k, v, i_, log_f = map(pad, (q, k, v, i_, log_f))
        if skip is None:
            skip = torch.zeros(T, 1, 1, dtype=torch.bool, device=q.device)
        skip = torch.cat([skip, skip.new_ones(N * L - T, *skip.shape[1:])])
    q, k, v = (_chunks(t, N, L) for t in (q, k, v))  # (B, nh, N, L, d or d+1)
    F_ = _chunks(log_f, N, L).cumsum(-1)  # (B, nh, N, L): F_t within each chunk
    i_ = _chunks(i_, N, L)
    if skip is not None:
        skip = _chunks(skip, N, L)  # (B, 1, N, L), over heads
        i_ = i_.masked_fill(skip, _NEG)
    gc = torch.cummax(i_ - F_, -1).values  # max_{s<=t} g_s
    G, FL = gc[..., -1], F_[..., -1]  # (B, nh, N): per chunk
    # exponents are summed as (i~_s - m) + (F_t - F_s): i~ and m are large together, their
    # difference exact; g_s - (m_t - F_t) would round at ulp(i~) (float32: 1.5e-5 at i~ = 200)

    # each chunk's own sum, scaled by exp(-R), R = F_L + G: S = sum_s exp(...) [v_s; 1] k_s^T
    R = FL + G  # (B, nh, N)
    w = torch.exp((i_ - R.unsqueeze(-1)) + (FL.unsqueeze(-1) - F_)).unsqueeze(-1)  # (.., L, 1)
    S = (w * v).transpose(-1, -2) @ k  # (B, nh, N, d+1, d)

    # the loop over chunks: [C; n] and m at each chunk's start, then the final state
    C, n, m = state
    Cn = torch.cat([C, n.unsqueeze(-2)], dim=-2)  # (B, nh, d+1, d)
    Cs, ms = [], []
    for FL_c, G_c, R_c, S_c in zip(FL.unbind(2), G.unbind(2), R.unbind(2), S.unbind(2)):
        Cs.append(Cn)
        ms.append(m)
        m_new = FL_c + torch.maximum(m, G_c)  # (B, nh): m_t at the chunk's last step
        f, i = torch.exp((m - m_new) + FL_c), torch.exp(R_c - m_new)  # weights of [C; n], S
        Cn = f[..., None, None] * Cn + i[..., None, None] * S_c
        m = m_new
    C0, m0 = torch.stack(Cs, 2), torch.stack(ms, 2).unsqueeze(-1)  # (B, nh, N, d+1, d), (.., 1)

    # every step of every chunk at once
    mt = F_ + torch.maximum(m0, gc)  # (B, nh, N, L): the recurrence's m_t
    e = torch.exp((m0 - mt) + F_).unsqueeze(-1)  # (B, nh, N, L, 1): C_0's weight in C_t
    causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()  # [t, s]: s <= t
    logW = (i_.unsqueeze(-2) - mt.unsqueeze(-1)) + (F_.unsqueeze(-1) - F_.unsqueeze(-2))
    A = (q @ k.transpose(-1, -2)) * torch.exp(logW.masked_fill(~causal, -math.inf))  # [t, s]
    Cq = A @ v + e * (q @ C0.transpose(-1, -2))  # (B, nh, N, L, d+1): [C_t q_t, n_t . q_t]
    den = torch.maximum(Cq[..., d].abs(), torch.exp(-mt))  # (B, nh, N, L)
    if skip is not None:  # a padded step's q = 0 makes 0 / 0 where exp(-m) underflows
        den = den.masked_fill(skip, 1.0)
    h = Cq[..., :d] / den.unsqueeze(-1)
    h = h.permute(2, 3, 0, 1, 4).reshape(N * L, B, nh, d)[:T]  # (B, nh, N, L, d) -> (T, ...)
    return h, (Cn[..., :d, :], Cn[..., d, :], m)


def mlstm_step(q: Tensor, k: Tensor, v: Tensor, i_: Tensor, log_f: Tensor,
               state: tuple[Tensor, Tensor, Tensor]
               ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """One mLSTM step, ``C_t q_t / max(|n_t . q_t|, exp(-m_t))`` (before the output gate).

    Args: ``q``, ``k``, ``v`` (B, nh, d), ``k`` already scaled by ``1 / sqrt(d)``; ``i_``,
    ``log_f`` (B, nh); ``state`` ``C`` (B, nh, d, d) (v index, k index), ``n`` (B, nh, d),
    ``m`` (B, nh). Returns ``h`` (B, nh, d) and the new ``(C, n, m)``.
    """
    C, n, m = state
    i, f, m = _stabilised_gates(i_, log_f, m)  # (B, nh)
    C = f[..., None, None] * C + i[..., None, None] * v.unsqueeze(-1) * k.unsqueeze(-2)  # v k^T
    n = f[..., None] * n + i[..., None] * k  # (B, nh, d)
    num = (C @ q.unsqueeze(-1)).squeeze(-1)  # (B, nh, d)
    den = torch.maximum((n * q).sum(-1).abs(), torch.exp(-m))  # (B, nh)
    return num / den[..., None], (C, n, m)


class _XLSTMCell(Cell):
    """Options shared by sLSTM and mLSTM: ``num_heads`` and ``forget``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 num_heads: int = 1, forget: str = "sigmoid"):
        super().__init__(input_size, hidden_size, bias)
        self.num_heads = _check_heads(num_heads, self.hidden_size)
        self.head_size = self.hidden_size // self.num_heads  # d
        self.forget = _check_forget(forget)

    def _log_f(self, f_: Tensor) -> Tensor:
        return F.logsigmoid(f_) if self.forget == "sigmoid" else f_

    def project(self, x: Tensor, p: Params) -> Tensor:
        return F.linear(x, p["weight_ih"], p.get("bias"))  # (T, B, I) -> (T, B, G)

    def reset_parameters(self, p: Params) -> None:
        """``nn.Linear``'s init for ``weight_ih``/``bias``; ``weight_hh ~ U(+-1/sqrt(d))``."""
        k = 1.0 / math.sqrt(self.input_size)
        with torch.no_grad():
            p["weight_ih"].uniform_(-k, k)
            if "bias" in p:
                p["bias"].uniform_(-k, k)
            if "weight_hh" in p:
                r = 1.0 / math.sqrt(self.head_size)
                p["weight_hh"].uniform_(-r, r)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_heads != 1:
            s += f", num_heads={self.num_heads}"
        return s + (f", forget={self.forget!r}" if self.forget != "sigmoid" else "")


class SLSTMCell(_XLSTMCell):
    """sLSTM step; state ``(h, c, n, m)``, each (B, H); output ``h``.

    Args (keyword-only): ``num_heads`` (1; must divide H): heads of the block-diagonal
    recurrent matrix; ``forget``: ``"sigmoid"`` (``log f = log sigmoid(g_f)``) or ``"exp"``
    (``log f = g_f``).
    """

    num_gates = 4  # weight_ih's row blocks z, i, f, o (for init_ih)
    forget_gate = 2  # the f block, for forget_bias

    @property
    def state_sizes(self) -> tuple[int, ...]:
        H = self.hidden_size
        return (H, H, H, H)

    def param_shapes(self):
        H, I, nh, d = self.hidden_size, self.input_size, self.num_heads, self.head_size
        shapes = {"weight_ih": (4 * H, I), "weight_hh": (4, nh, d, d)}
        if self.bias:
            shapes["bias"] = (4 * H,)
        return shapes

    def recurrent(self, h: Tensor, R: Tensor) -> Tensor:
        """``R h`` per gate block and head: h (B, H), R (4, nh, d, d) -> (B, 4H)."""
        B = h.shape[0]
        hj = h.reshape(B, self.num_heads, self.head_size)  # (B, nh, d)
        return torch.einsum("bjd,kjed->bkje", hj, R).reshape(B, 4 * self.hidden_size)

    def step(self, x_t: Tensor, state: State, p: Params):
        h, c, n, m = state
        g = x_t + self.recurrent(h, p["weight_hh"])  # (B, 4H)
        z_, i_, f_, o_ = g.chunk(4, dim=-1)
        i, f, m = _stabilised_gates(i_, self._log_f(f_), m)
        c = f * c + i * torch.tanh(z_)
        n = f * n + i
        h = torch.sigmoid(o_) * c / n
        return h, (h, c, n, m)

    def scan(self, xp: Tensor, state: State, p: Params, mask: Tensor | None = None):
        """All T steps without a graph, with the backward through time written out
        (:mod:`rnnkit.cells.slstm_scan`): ``xp`` (T, B, 4H) -> ys (T, B, H) and the last
        state. Half precision computes in float32."""
        dt = xp.dtype
        state = tuple(float32_at_least(s) for s in state)
        ys, last = slstm_scan(float32_at_least(xp), state, float32_at_least(p["weight_hh"]),
                              mask, self.forget == "sigmoid")
        return ys.to(dt), tuple(s.to(dt) for s in last)


class MLSTMCell(_XLSTMCell):
    """mLSTM step; state ``(C (B, nh*d*d), n (B, H), m (B, nh))``; output ``h`` (B, H).

    Args (keyword-only): ``num_heads`` (1; must divide H): memories ``C`` of size d x d;
    ``forget``: ``"sigmoid"`` or ``"exp"`` as for :class:`SLSTMCell`; ``mode``:
    ``"parallel"`` (the chunkwise :meth:`scan`) or ``"sequential"`` (the layer steps it).
    """

    num_gates = 1  # weight_ih's blocks are uneven (q, k, v, o: H rows; i, f: nh): one for init_ih
    #: steps per chunk of the parallel form: forward + backward of MLSTM(128, 256, num_heads=4),
    #: T = 1000, B = 8, float32, one thread on the 2-core Xeon: 64 224 ms, 32 230 ms, 128 418 ms,
    #: stepping 1271 ms (``python benchmarks/bench_scans.py``, ``bench_scans_xeon2_s32.json``)
    chunk_size = 64

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 num_heads: int = 1, forget: str = "sigmoid", mode: str = "parallel"):
        super().__init__(input_size, hidden_size, bias, num_heads=num_heads, forget=forget)
        if mode not in ("parallel", "sequential"):
            raise ValueError(f"mode: expected 'parallel' or 'sequential', got {mode!r}")
        self.mode = mode

    @property
    def state_sizes(self) -> tuple[int, ...]:
        nh, d = self.num_heads, self.head_size
        return (nh * d * d, self.hidden_size, nh)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def param_shapes(self):
        G = 4 * self.hidden_size + 2 * self.num_heads
        shapes = {"weight_ih": (G, self.input_size)}
        if self.bias:
            shapes["bias"] = (G,)
        return shapes

    def step(self, x_t: Tensor, state: State, p: Params):
        C, n, m = state
        B, H, nh, d = x_t.shape[0], self.hidden_size, self.num_heads, self.head_size
        q, k, v, i_, f_, o_ = x_t.split([H, H, H, nh, nh, H], dim=-1)
        q, k, v = (t.reshape(B, nh, d) for t in (q, k, v))  # (B, H) -> (B, nh, d)
        h, (C, n, m) = mlstm_step(q, k / math.sqrt(d), v, i_, self._log_f(f_),
                                  (C.reshape(B, nh, d, d), n.reshape(B, nh, d), m))
        h = torch.sigmoid(o_) * h.reshape(B, H)
        return h, (C.reshape(B, nh * d * d), n.reshape(B, H), m)

    @property
    def scan(self):
        """The chunkwise form in parallel mode, else None (the layer's loop runs :meth:`step`)."""
        return self._chunkwise_scan if self.mode == "parallel" else None

    def _chunkwise_scan(self, xp: Tensor, state: State, p: Params, mask: Tensor | None = None):
        """All T steps at once: (T, B, G) -> ys (T, B, H) and the last state."""
        dt = xp.dtype  # a half-precision scan runs in float32, as LRUCell.scan
        x = float32_at_least(xp)
        T, B = x.shape[:2]
        H, nh, d = self.hidden_size, self.num_heads, self.head_size
        q, k, v, i_, f_, o_ = x.split([H, H, H, nh, nh, H], dim=-1)
        q, k, v = (t.reshape(T, B, nh, d) for t in (q, k, v))  # (T, B, H) -> (T, B, nh, d)
        C, n, m = (s.to(x.dtype) for s in state)
        C, n = C.reshape(B, nh, d, d), n.reshape(B, nh, d)  # (B, nh*d*d) -> (B, nh, d, d)
        h, (C, n, m) = mlstm_chunkwise(q, k / math.sqrt(d), v, i_, self._log_f(f_), (C, n, m),
                                       mask, self.chunk_size)
        y = (torch.sigmoid(o_) * h.reshape(T, B, H)).to(dt)
        if mask is not None:
            y = y.masked_fill(~mask, 0.0)
        return y, (C.reshape(B, nh * d * d).to(dt), n.reshape(B, H).to(dt), m.to(dt))

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", mode={self.mode!r}" if self.mode != "parallel" else "")
