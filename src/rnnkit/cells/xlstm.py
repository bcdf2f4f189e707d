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

(the paper's ``C~ q / max(|n~ . q|, 1)`` with ``C~ = exp(m) C``). Parameters: ``weight_ih
(3H + 2 nh + H, I)`` (row blocks q, k, v (H each), i~ (nh), f~ (nh), o (H)), ``bias`` as long.
State ``(C, n, m)``: ``C`` (B, nh*d*d), row-major (head, v index, k index), ``n`` (B, H), ``m``
(B, nh); output ``h`` (B, H). The layer steps it (no chunkwise-parallel form here).

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

from .base import Cell, Params, State, check_int

__all__ = ["SLSTMCell", "MLSTMCell"]

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


class MLSTMCell(_XLSTMCell):
    """mLSTM step; state ``(C (B, nh*d*d), n (B, H), m (B, nh))``; output ``h`` (B, H).

    Args (keyword-only): ``num_heads`` (1; must divide H): memories ``C`` of size d x d;
    ``forget``: ``"sigmoid"`` or ``"exp"`` as for :class:`SLSTMCell`.
    """

    num_gates = 1  # weight_ih's blocks are uneven (q, k, v, o: H rows; i, f: nh): one for init_ih

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
        k = k / math.sqrt(d)
        i, f, m = _stabilised_gates(i_, self._log_f(f_), m)  # (B, nh)
        C = f[..., None, None] * C.reshape(B, nh, d, d) \
            + i[..., None, None] * v.unsqueeze(-1) * k.unsqueeze(-2)  # (B, nh, d, d): v k^T
        n = f[..., None] * n.reshape(B, nh, d) + i[..., None] * k  # (B, nh, d)
        num = (C @ q.unsqueeze(-1)).squeeze(-1)  # (B, nh, d)
        den = torch.maximum((n * q).sum(-1).abs(), torch.exp(-m))  # (B, nh)
        h = torch.sigmoid(o_) * (num / den[..., None]).reshape(B, H)
        return h, (C.reshape(B, nh * d * d), n.reshape(B, H), m)
