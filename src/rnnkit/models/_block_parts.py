"""What the published blocks share: argument checks, time-major input and lengths, the causal
depthwise convolution (Griffin's, Mamba's and xLSTM's), the residual block's
skeleton (:class:`_Block`: lengths, state, streaming), and Griffin's gated MLP half (its
recurrent and local-attention blocks both end with it)."""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return int(v)


def _time_major(x: Tensor, d_model: int, batch_first: bool, name: str = "d_model") -> Tensor:
    """``x`` checked, as (T, B, d); ``name`` is the size's (``d_model``, ``input_size``)."""
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != d_model:
        what = f"(B, T, {name})" if batch_first else f"(T, B, {name})"
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x: expected shape {what} with {name}={d_model}, got {got}")
    return x.transpose(0, 1) if batch_first else x  # (B, T, d) -> (T, B, d)


def _lengths(lengths, T: int, B: int, device) -> tuple[Tensor | None, Tensor | None]:
    """``lengths`` as an int64 (B,) tensor and the (T, B, 1) mask of valid steps (or Nones)."""
    if lengths is None:
        return None, None
    lens = torch.as_tensor(lengths)
    if lens.dim() != 1 or lens.shape[0] != B or lens.dtype.is_floating_point \
            or lens.dtype == torch.bool or lens.is_complex():
        raise ValueError(f"lengths: expected {B} integer lengths (one per sequence), got "
                         f"{tuple(lens.shape)} of {lens.dtype}")
    if B and (int(lens.min()) < 1 or int(lens.max()) > T):
        raise ValueError(f"lengths: every length must be in [1, T={T}], got {lens.tolist()}")
    lens = lens.to(torch.int64)
    mask = torch.arange(T, device=device)[:, None] < lens.to(device)[None, :]  # (T, B)
    return lens, mask.unsqueeze(-1)


def _probability(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v < 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {v!r}")
    return float(v)


def _gated_mlp(block: nn.Module, d: int, E: int, eps: float, factory: dict) -> None:
    """Give ``block`` Griffin's MLP half: ``mlp_norm`` and ``mlp_gate``, ``mlp_up`` (E, d),
    ``mlp_down`` (d, E), every Linear with a bias."""
    block.mlp_norm = nn.RMSNorm(d, eps=eps, **factory)
    block.mlp_gate = nn.Linear(d, E, **factory)
    block.mlp_up = nn.Linear(d, E, **factory)
    block.mlp_down = nn.Linear(E, d, **factory)


def _add_gated_mlp(block: nn.Module, x: Tensor) -> Tensor:
    """``x + drop(W_down (GeLU(W_g n + b_g) * (W_u n + b_u)) + b_down)``, ``n = RMSNorm(x)``."""
    n = block.mlp_norm(x)
    return x + block.drop(block.mlp_down(F.gelu(block.mlp_gate(n), approximate="tanh")
                                         * block.mlp_up(n)))


class _CausalConv1d(nn.Conv1d):
    """Depthwise causal convolution over time, with bias, on time-major input:
    ``y_t[c] = bias[c] + sum_j weight[c, 0, j] x_{t - k + 1 + j}[c]`` (zero before t = 0)."""

    def __init__(self, channels: int, width: int, **factory):
        super().__init__(channels, channels, width, groups=channels, **factory)

    def forward(self, x: Tensor) -> Tensor:
        """(T, B, C) -> (T, B, C), zeros before the first step."""
        C, k = self.weight.shape[0], self.weight.shape[-1]
        return self.scan(x, x.new_zeros(x.shape[1], C, k - 1))[0]

    def scan(self, x: Tensor, buf: Tensor, lengths: Tensor | None = None
             ) -> tuple[Tensor, Tensor]:
        """``x`` (T, B, C) after the inputs ``buf`` (B, C, k - 1) -> ``y`` (T, B, C) and each
        sequence's last k - 1 inputs (B, C, k - 1), the last valid ones with ``lengths``."""
        k1 = buf.shape[-1]
        xin = torch.cat([buf.permute(2, 0, 1), x])  # (k - 1 + T, B, C), oldest first
        y = F.conv1d(xin.permute(1, 2, 0), self.weight, self.bias, groups=self.groups)
        if lengths is None:
            last = xin[xin.shape[0] - k1:]
        else:  # a sequence of length n ends at xin[k - 2 + n]: its last k - 1 are [n, n + k - 1)
            idx = lengths.to(x.device)[None, :] + torch.arange(k1, device=x.device)[:, None]
            last = xin.gather(0, idx.unsqueeze(-1).expand(k1, *x.shape[1:]))
        return y.permute(2, 0, 1), last.permute(1, 2, 0)  # (B, C, T) -> (T, B, C); (B, C, k-1)

    def step(self, x_t: Tensor, buf: Tensor) -> tuple[Tensor, Tensor]:
        """One step: ``x_t`` (B, C) and the last k - 1 inputs ``buf`` (B, C, k - 1)."""
        window = torch.cat([buf, x_t.unsqueeze(-1)], dim=-1)  # (B, C, k), oldest first
        return (window * self.weight.squeeze(1)).sum(-1) + self.bias, window[..., 1:]


class _Block(nn.Module):
    """What the convolution-fronted blocks share (Griffin's, Mamba's, xLSTM's two): shapes,
    lengths, batch_first, the streaming state's layout ``(conv inputs, recurrent state)``,
    residual dropout (on each branch before it is added to the stream)."""

    d_model: int
    batch_first: bool
    conv: _CausalConv1d
    drop: nn.Dropout

    def _mix(self, x: Tensor, lengths: Tensor | None, buf: Tensor, h: Tensor):
        raise NotImplementedError

    def _mix_step(self, n: Tensor, buf: Tensor, h: Tensor):
        raise NotImplementedError

    def _add_mlp(self, x: Tensor) -> Tensor:
        return x  # a second half, ``x + MLP(norm(x))`` (Griffin's, the sLSTM block's); or none

    def forward(self, x: Tensor, lengths=None) -> Tensor:
        """``x`` (T, B, d) [(B, T, d) if batch_first], ``lengths`` (B,) or None -> same shape."""
        return self.scan(x, lengths=lengths)[0]

    def scan(self, x: Tensor, state=None, lengths=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """:meth:`forward` from a state, and the state after it: ``x`` as forward's, ``state``
        from :meth:`init_state`, :meth:`step` or a previous call (None: zeros). Returns ``(y,
        state)``, the state at each sequence's last valid step: running a sequence in pieces
        (truncated backpropagation through time) gives the outputs of running it whole."""
        x = _time_major(x, self.d_model, self.batch_first)
        lens, mask = _lengths(lengths, x.shape[0], x.shape[1], x.device)
        if mask is not None:
            x = x.masked_fill(~mask, 0.0)
        buf, h = self.init_state(x.shape[1]) if state is None else state
        y, buf, h = self._mix(x, lens, buf, h)
        x = self._add_mlp(x + self.drop(y))
        if mask is not None:
            x = x.masked_fill(~mask, 0.0)
        return (x.transpose(0, 1) if self.batch_first else x), (buf, h)  # (T, B, d) -> (B, T, d)

    def init_state(self, batch: int) -> tuple[Tensor, Tensor]:
        """Zero state for :meth:`step`: the convolution's last inputs (B, C, k - 1) and the
        recurrence's state (1, B, S)."""
        w = self.conv.weight
        C, k = w.shape[0], w.shape[-1]
        return w.new_zeros(batch, C, k - 1), self._rnn.init_state(batch)

    def step(self, x_t: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step, ``x_t`` (B, d) -> ``(y_t (B, d), state)``; ``state`` from
        :meth:`init_state` or the previous call (None: zeros). Stepping a sequence gives
        ``forward``'s outputs."""
        if not isinstance(x_t, Tensor) or x_t.dim() != 2 or x_t.shape[-1] != self.d_model:
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"x_t: expected shape (B, d_model={self.d_model}), got {got}")
        buf, h = self.init_state(x_t.shape[0]) if state is None else state
        y, buf, h = self._mix_step(x_t, buf, h)
        return self._add_mlp(x_t + self.drop(y)), (buf, h)
