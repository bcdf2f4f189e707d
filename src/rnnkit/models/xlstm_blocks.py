"""xLSTM's two residual blocks (Beck et al. 2024, "xLSTM", section 2.4 and appendix B; the
authors' ``xlstm`` package): the mLSTM block (pre up-projection) and the sLSTM block (post
up-projection). A :class:`~rnnkit.models.blocks.BlockStack` of ``"xlstm"`` blocks is mLSTM
blocks with an sLSTM block every ``slstm_every``-th position (the paper's xLSTM[a:b] ratios:
``slstm_every=0`` is xLSTM[1:0], ``8`` is xLSTM[7:1], ``1`` is xLSTM[0:1]).

**MLSTMBlock** (pre up-projection; ``Din = expand * d``, ``nh`` heads of ``dh = Din / nh``)::

    n        = LayerNorm(x)
    xm, z    = chunk(W_up n, 2)                              W_up (2 Din, d), no bias
    c        = SiLU(Conv1D(xm))                              causal, depthwise, with bias
    q, k, v  = Q c, K c, V xm                                block-diagonal (Din / qkv_block_size
                                                             blocks of qkv_block_size), no bias
    i~, f~   = W_i [q; k; v] + b_i,  W_f [q; k; v] + b_f     (nh,) each: one gate per head
    h~       = mLSTM(q, k / sqrt(dh), v, i~, log sigmoid(f~))   C q / max(|n . q|, exp(-m))
    x        = x + W_down ((GroupNorm_nh(h~) + s * c) * SiLU(z))     s (Din,), W_down no bias

with the mLSTM of :mod:`rnnkit.cells.xlstm` (the chunkwise form over a sequence,
:func:`~rnnkit.cells.xlstm.mlstm_chunkwise`; one step at a time, ``mlstm_step``).

**SLSTMBlock** (post up-projection; ``nh`` heads of ``dh = d / nh``)::

    n        = LayerNorm(x)
    c        = SiLU(Conv1D(n))
    g        = [Z n; I c; F c; O n] + b                      Z, I, F, O block-diagonal per head
    h        = sLSTM(g)                                      recurrent R block-diagonal per head
    x        = x + GroupNorm_nh(h)
    x        = x + W_down (GeLU(W_gate n') * W_up n'),  n' = LayerNorm(x)    width E, no biases

with the sLSTM of :mod:`rnnkit.cells.xlstm` (its scan with the written-out backward).

Initialisation, as the authors' code: the mLSTM's gate weights zero, input-gate biases
``N(0, 0.1)``, forget-gate biases ``linspace(3, 6)`` over heads; ``s = 1``; the sLSTM's
recurrent weights zero, its biases zero but the forget gate's, ``5 - 12 (j / (dh - 1))^p``
for unit ``j`` of each head with ``p = 0.3 + 1.3 * position`` (``position`` the block's
place in the stack, 0 to 1: later blocks remember less); LayerNorm and GroupNorm weights 1.
Departures: every other weight keeps torch's default initialisation, ``nn.Linear``'s (for the
block-diagonal maps ``U(+-1/sqrt(block))``, each block's fan-in; the authors use "small init"
and "Wang init" normals); ``expand`` is an integer and the widths are not rounded up to
multiples of 64 except the sLSTM block's MLP (``ffn_width``, by default the authors'
``ceil(1.3 d / 64) * 64``); the mLSTM's denominator has no ``+ 1e-6``; dropout is residual
dropout on each branch before it joins the stream (the authors' drops the sLSTM's output
before its GroupNorm).

Half precision: the recurrences (scan and step) run in float32 with autocast off, as rnnkit's
recurrent layers run theirs; their outputs and states come back in the block's dtype.

Padded batches, streaming and the state (``(conv inputs (B, C, k - 1), cell state)``; the
cell state ``(C (B, nh, dh, dh), n (B, nh, dh), m (B, nh))`` for mLSTM, ``(h, c, n, m)`` each
(B, d) for sLSTM) behave as in :mod:`rnnkit.models.blocks`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells.base import check_flag, float32_at_least
from rnnkit.cells.xlstm import MLSTMCell, SLSTMCell, mlstm_chunkwise, mlstm_step

from ._block_parts import _Block, _CausalConv1d, _positive_int, _probability

__all__ = ["MLSTMBlock", "SLSTMBlock"]


def _divides(name: str, part: int, whole_name: str, whole: int) -> int:
    if whole % part:
        raise ValueError(f"{name}: expected a divisor of {whole_name}={whole}, got {part}")
    return part


class _Headwise(nn.Module):
    """A block-diagonal linear map without bias: ``features`` split into ``blocks`` equal
    parts, each mapped by its own square matrix, ``weight`` (blocks, out, in)."""

    def __init__(self, features: int, blocks: int, **factory):
        super().__init__()
        size = features // blocks
        self.weight = nn.Parameter(torch.empty(blocks, size, size, **factory))
        nn.init.uniform_(self.weight, -1 / math.sqrt(size), 1 / math.sqrt(size))  # nn.Linear's

    def forward(self, x: Tensor) -> Tensor:
        nb, size = self.weight.shape[:2]
        y = torch.einsum("...ni,noi->...no", x.unflatten(-1, (nb, size)), self.weight)
        return y.flatten(-2)


def _in_float32(fn, inputs: tuple, state: tuple):
    """``fn(*inputs, state) -> (h, state)`` with half-precision tensors in float32 and autocast
    off (as rnnkit's recurrent layers run their recurrences); ``h`` and the state come back in
    the first input's dtype. The exponential gates and the stabiliser need float32: in
    bfloat16 a forget gate of sigmoid(6) = 0.9975 rounds to 0.996 or 1."""
    dt, dev = inputs[0].dtype, inputs[0].device.type
    with torch.autocast(dev, enabled=False):
        h, state = fn(*(float32_at_least(t) for t in inputs),
                      tuple(float32_at_least(s) for s in state))
    return h.to(dt), tuple(s.to(dt) for s in state)


def _valid_steps(x: Tensor, lengths: Tensor | None) -> Tensor | None:
    """The (T, B, 1) mask of each sequence's valid steps (``lengths`` already checked by the
    block's scan), or None: what the cells' scans take."""
    if lengths is None:
        return None
    return (torch.arange(x.shape[0], device=x.device)[:, None] < lengths.to(x.device))[..., None]


def _group_norm(h: Tensor, heads: int, weight: Tensor, eps: float) -> Tensor:
    """Each head's features normalised on their own (the authors' MultiHeadLayerNorm): ``h``
    (..., H) -> (..., H), times ``weight`` (H,), no bias."""
    shape = h.shape
    return F.group_norm(h.reshape(-1, shape[-1]), heads, weight, None, eps).reshape(shape)


class MLSTMBlock(_Block):
    """xLSTM's mLSTM block (pre up-projection): the module docstring's equations.

    Args:
        d_model: features of ``x`` (d).
        expand: the inner width over d (2, the authors' ``proj_factor``).
        num_heads: mLSTM heads (4); must divide ``expand * d_model``.
        qkv_block_size: the width of each block of the q, k, v maps (4); must divide the
            inner width.
        conv_width: the causal convolution's kernel (4).
        batch_first: ``x`` is (B, T, d). eps: the norms' (1e-5).
        dropout: residual dropout on the block's output before it joins ``x`` (0).

    Example::

        >>> block = MLSTMBlock(16, num_heads=2)
        >>> block(torch.randn(10, 2, 16), lengths=torch.tensor([10, 4])).shape
        torch.Size([10, 2, 16])
        >>> y_t, (buf, (C, n, m)) = block.step(torch.randn(2, 16))       # streaming
        >>> y_t.shape, buf.shape, C.shape
        (torch.Size([2, 16]), torch.Size([2, 32, 3]), torch.Size([2, 2, 16, 16]))
    """

    def __init__(self, d_model: int, *, expand: int = 2, num_heads: int = 4,
                 qkv_block_size: int = 4, conv_width: int = 4, batch_first: bool = False,
                 eps: float = 1e-5, dropout: float = 0.0, device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        d = self.d_model = _positive_int("d_model", d_model)
        Din = self.d_inner = _positive_int("expand", expand) * d
        nh = self.num_heads = _divides("num_heads", _positive_int("num_heads", num_heads),
                                       "expand * d_model", Din)
        bs = _divides("qkv_block_size", _positive_int("qkv_block_size", qkv_block_size),
                      "expand * d_model", Din)
        k = _positive_int("conv_width", conv_width)
        self.batch_first = check_flag("batch_first", batch_first)
        self.eps = eps
        self.drop = nn.Dropout(_probability("dropout", dropout))
        self.norm = nn.LayerNorm(d, eps=eps, bias=False, **f)
        self.proj_up = nn.Linear(d, 2 * Din, bias=False, **f)
        self.conv = _CausalConv1d(Din, k, **f)
        self.q_proj, self.k_proj, self.v_proj = (_Headwise(Din, Din // bs, **f) for _ in "qkv")
        self.igate = nn.Linear(3 * Din, nh, **f)
        self.fgate = nn.Linear(3 * Din, nh, **f)
        self.outnorm_weight = nn.Parameter(torch.ones(Din, **f))
        self.skip = nn.Parameter(torch.ones(Din, **f))
        self.proj_down = nn.Linear(Din, d, bias=False, **f)
        with torch.no_grad():  # the authors' gate initialisation
            self.igate.weight.zero_()
            self.igate.bias.normal_(0.0, 0.1)
            self.fgate.weight.zero_()
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, nh))

    def init_state(self, batch: int) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """Zeros: the convolution's last inputs (B, Din, k - 1) and ``(C, n, m)``."""
        w, nh = self.conv.weight, self.num_heads
        dh = self.d_inner // nh
        return (w.new_zeros(batch, self.d_inner, w.shape[-1] - 1),
                (w.new_zeros(batch, nh, dh, dh), w.new_zeros(batch, nh, dh),
                 w.new_zeros(batch, nh)))

    def _qkv_gates(self, x: Tensor, buf: Tensor, lengths, conv_step: bool):
        xm, z = self.proj_up(self.norm(x)).chunk(2, dim=-1)  # (.., 2 Din) -> 2 x (.., Din)
        c, buf = self.conv.step(xm, buf) if conv_step else self.conv.scan(xm, buf, lengths)
        c = F.silu(c)
        q, k, v = self.q_proj(c), self.k_proj(c), self.v_proj(xm)
        qkv = torch.cat([q, k, v], dim=-1)
        heads = lambda t: t.unflatten(-1, (self.num_heads, -1))  # noqa: E731  (.., nh, dh)
        dh = self.d_inner // self.num_heads
        return (heads(q), heads(k) / math.sqrt(dh), heads(v), self.igate(qkv),
                F.logsigmoid(self.fgate(qkv)), c, z, buf)

    def _out(self, h: Tensor, c: Tensor, z: Tensor) -> Tensor:
        h = _group_norm(h.flatten(-2), self.num_heads, self.outnorm_weight, self.eps)
        return self.proj_down((h + self.skip * c) * F.silu(z))

    def _mix(self, x: Tensor, lengths: Tensor | None, buf: Tensor, state):
        q, k, v, i_, log_f, c, z, buf = self._qkv_gates(x, buf, lengths, conv_step=False)
        mask = _valid_steps(x, lengths)
        h, st = _in_float32(lambda *a: mlstm_chunkwise(*a, mask, MLSTMCell.chunk_size),
                            (q, k, v, i_, log_f), state)
        return self._out(h, c, z), buf, st

    def _mix_step(self, x_t: Tensor, buf: Tensor, state):
        q, k, v, i_, log_f, c, z, buf = self._qkv_gates(x_t, buf, None, conv_step=True)
        h, st = _in_float32(mlstm_step, (q, k, v, i_, log_f), state)
        return self._out(h, c, z), buf, st


class SLSTMBlock(_Block):
    """xLSTM's sLSTM block (post up-projection): the module docstring's equations.

    Args:
        d_model: features of ``x`` (d).
        num_heads: sLSTM heads (4); must divide d.
        conv_width: the causal convolution before the input and forget gates (4).
        ffn_width: the gated MLP's width E (default ``ceil(1.3 d / 64) * 64``, the authors').
        position: the block's place in its stack, 0 (first) to 1 (last), for the forget
            gate's initial biases (0).
        batch_first: ``x`` is (B, T, d). eps: the norms' (1e-5).
        dropout: residual dropout on the sLSTM's and the MLP's output before each joins ``x``.

    Example::

        >>> block = SLSTMBlock(16, num_heads=2)
        >>> block(torch.randn(10, 2, 16), lengths=torch.tensor([10, 4])).shape
        torch.Size([10, 2, 16])
        >>> y_t, (buf, (h, c, n, m)) = block.step(torch.randn(2, 16))       # streaming
        >>> y_t.shape, buf.shape, h.shape
        (torch.Size([2, 16]), torch.Size([2, 16, 3]), torch.Size([2, 16]))
    """

    def __init__(self, d_model: int, *, num_heads: int = 4, conv_width: int = 4,
                 ffn_width: int | None = None, position: float = 0.0,
                 batch_first: bool = False, eps: float = 1e-5, dropout: float = 0.0,
                 device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        d = self.d_model = _positive_int("d_model", d_model)
        nh = self.num_heads = _divides("num_heads", _positive_int("num_heads", num_heads),
                                       "d_model", d)
        dh = d // nh
        E = 64 * math.ceil(1.3 * d / 64) if ffn_width is None else \
            _positive_int("ffn_width", ffn_width)
        k = _positive_int("conv_width", conv_width)
        if isinstance(position, bool) or not isinstance(position, (int, float)) \
                or not 0.0 <= position <= 1.0:
            raise ValueError(f"position: expected a number in [0, 1], got {position!r}")
        self.batch_first = check_flag("batch_first", batch_first)
        self.eps = eps
        self.drop = nn.Dropout(_probability("dropout", dropout))
        self.norm = nn.LayerNorm(d, eps=eps, bias=False, **f)
        self.conv = _CausalConv1d(d, k, **f)
        self.zgate, self.igate, self.fgate, self.ogate = (_Headwise(d, nh, **f) for _ in "zifo")
        self._cell = SLSTMCell(d, d, num_heads=nh)
        self.weight_hh = nn.Parameter(torch.zeros(4, nh, dh, dh, **f))  # R: zero, the authors'
        self.gate_bias = nn.Parameter(torch.zeros(4 * d, **f))  # blocks z, i, f, o
        self.outnorm_weight = nn.Parameter(torch.ones(d, **f))
        self.mlp_norm = nn.LayerNorm(d, eps=eps, bias=False, **f)
        self.mlp_up = nn.Linear(d, 2 * E, bias=False, **f)  # rows: gate, up
        self.mlp_down = nn.Linear(E, d, bias=False, **f)
        j = torch.arange(dh, dtype=torch.float64) / max(dh - 1, 1)
        forget = 5.0 - 12.0 * j ** (0.3 + 1.3 * float(position))  # the authors' power law
        with torch.no_grad():
            self.gate_bias[2 * d:3 * d].copy_(forget.repeat(nh))

    def init_state(self, batch: int) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Zeros: the convolution's last inputs (B, d, k - 1) and ``(h, c, n, m)``."""
        w = self.conv.weight
        zeros = tuple(w.new_zeros(batch, self.d_model) for _ in range(4))
        return w.new_zeros(batch, self.d_model, w.shape[-1] - 1), zeros

    def _gates(self, x: Tensor, c: Tensor) -> Tensor:
        return torch.cat([self.zgate(x), self.igate(c), self.fgate(c), self.ogate(x)],
                         dim=-1) + self.gate_bias

    def _mix(self, x: Tensor, lengths: Tensor | None, buf: Tensor, state):
        n = self.norm(x)
        c, buf = self.conv.scan(n, buf, lengths)
        mask = _valid_steps(x, lengths)
        h, state = _in_float32(lambda g, R, st: self._cell.scan(g, st, {"weight_hh": R}, mask),
                               (self._gates(n, F.silu(c)), self.weight_hh), state)
        return _group_norm(h, self.num_heads, self.outnorm_weight, self.eps), buf, state

    def _mix_step(self, x_t: Tensor, buf: Tensor, state):
        n = self.norm(x_t)
        c, buf = self.conv.step(n, buf)
        h, state = _in_float32(lambda g, R, st: self._cell.step(g, st, {"weight_hh": R}),
                               (self._gates(n, F.silu(c)), self.weight_hh), state)
        return _group_norm(h, self.num_heads, self.outnorm_weight, self.eps), buf, state

    def _add_mlp(self, x: Tensor) -> Tensor:
        gate, up = self.mlp_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.drop(self.mlp_down(F.gelu(gate) * up))
