"""Griffin's local-attention residual block (De et al. 2024, "Griffin", section 2.4).

Griffin interleaves its recurrent blocks with this one (two recurrent, one attention): the
same residual block with local multi-query attention as its temporal mix,

    x = x + LocalMQA(RMSNorm(x))
    x = x + MLP(RMSNorm(x))                                        as GriffinBlock's
    q = W_q n  (H heads of dh = d / H),   k = W_k n,  v = W_v n   (one key/value head, dh)
    q, k    = RoPE(q, p), RoPE(k, p)      p: the token's position in its sequence
    LocalMQA(n)_t = W_o [ softmax_s( q_t^h . k_s / sqrt(dh) ) v_s ]_h + b_o,
                    over the keys s with t - W <= s <= t

RoPE, as Griffin's code: the first half of each head's features is rotated, pairs
``(x_i, x_{i + dh/4})`` by the angle ``p / 10000^(4i / dh)``; the second half is left as is. The
window ``W`` (1024 in the paper) counts the past keys: a query sees ``W + 1`` tokens with its
own. ``W_q, W_k, W_v`` have no bias, ``W_o`` has one. The softmax is taken in float32 at least.

State, so that a sequence run in pieces (truncated backpropagation through time, streaming)
gives the outputs of running it whole: ``(keys (B, W, dh), values (B, W, dh), count (B,))``, the
last ``W`` rotated keys and values of each sequence (oldest first, zeros before its first
token) and how many tokens it has seen, which is the next token's position.

Padded batches: a valid step attends only to earlier steps of its own sequence (padding comes
after it); the output is zero past each length, and the state is taken at each sequence's
last valid step.

Departures from Griffin's code: parameters get torch's default initialisation (Griffin's
uses normals of variance 1/d); RMSNorm is torch's (``w * x / rms``, Griffin's ``(1 + w)``, the
same family); positions are counted per sequence from the state, not given as segment ids.

Shapes: ``T`` time, ``B`` batch, ``d`` d_model, ``H`` heads, ``dh`` head size, ``W`` window.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.cells.base import check_flag

from ._block_parts import (
    _add_gated_mlp,
    _gated_mlp,
    _lengths,
    _positive_int,
    _probability,
    _time_major,
)

__all__ = ["LocalAttentionBlock", "rope"]

#: queries per chunk of the banded attention: scores are (B, H, chunk, W + chunk)
_CHUNK = 128


def rope(x: Tensor, positions: Tensor, max_wavelength: float = 10_000.0) -> Tensor:
    """Griffin's RoPE on the last dim of ``x`` (..., dh) at ``positions`` (x's leading dims
    but the head's): the first half rotated, pairs ``(i, i + dh/4)``, the second half kept."""
    dh = x.shape[-1]
    r = dh // 4  # rotated pairs
    inv = max_wavelength ** (-torch.arange(r, dtype=torch.float64, device=x.device) / r)
    angle = positions.to(torch.float64)[..., None] * inv  # (..., r), float64: large p stays exact
    while angle.dim() < x.dim():  # a heads dim between the positions' and the features
        angle = angle.unsqueeze(-2)
    sin, cos = torch.sin(angle).to(x.dtype), torch.cos(angle).to(x.dtype)
    a, b, rest = x[..., :r], x[..., r:2 * r], x[..., 2 * r:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin, rest], dim=-1)


class LocalAttentionBlock(nn.Module):
    """Griffin's residual block with local multi-query attention (see the module docstring).

    Args:
        d_model: features of ``x`` (d).
        num_heads: query heads H (``d_model`` must split into heads of a size divisible by 4).
        window: past tokens each query sees (W, 1024 in the paper).
        expansion: the MLP's width over d (3). eps: RMSNorm's (1e-6).
        batch_first: ``x`` is (B, T, d). dropout: residual dropout on each branch (0).

    Example::

        >>> block = LocalAttentionBlock(16, num_heads=2, window=4)
        >>> block(torch.randn(10, 3, 16), lengths=torch.tensor([10, 6, 1])).shape
        torch.Size([10, 3, 16])
        >>> y_t, (k, v, n) = block.step(torch.randn(3, 16))  # streaming, one step
        >>> k.shape, n.tolist()
        (torch.Size([3, 4, 8]), [1, 1, 1])
    """

    def __init__(self, d_model: int, *, num_heads: int = 1, window: int = 1024,
                 expansion: int = 3, eps: float = 1e-6, batch_first: bool = False,
                 dropout: float = 0.0, device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        d = self.d_model = _positive_int("d_model", d_model)
        H = self.num_heads = _positive_int("num_heads", num_heads)
        self.window = _positive_int("window", window)
        if d % H or (d // H) % 4:
            raise ValueError(f"num_heads: d_model={d} must split into {H} heads of a size "
                             "divisible by 4 (RoPE rotates pairs in the first half of each head)")
        dh = self.head_dim = d // H
        self.batch_first = check_flag("batch_first", batch_first)
        self.drop = nn.Dropout(_probability("dropout", dropout))
        self.eps = eps
        self.temporal_norm = nn.RMSNorm(d, eps=eps, **f)
        self.proj_q = nn.Linear(d, d, bias=False, **f)
        self.proj_k = nn.Linear(d, dh, bias=False, **f)
        self.proj_v = nn.Linear(d, dh, bias=False, **f)
        self.proj_final = nn.Linear(d, d, **f)
        _gated_mlp(self, d, _positive_int("expansion", expansion) * d, eps, f)

    def init_state(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """No tokens seen: zero keys and values (B, W, dh) and a count of 0 (B,)."""
        w = self.proj_k.weight
        z = w.new_zeros(batch, self.window, self.head_dim)
        return z, z.clone(), torch.zeros(batch, dtype=torch.int64, device=w.device)

    def _attend(self, q: Tensor, K: Tensor, V: Tensor, count: Tensor) -> Tensor:
        """``q`` (T, B, H, dh); ``K``, ``V`` (W + T, B, dh), the cache then the new tokens ->
        (T, B, H, dh). Query t reads the band ``[t, W + t]`` of K's first axis."""
        T, B, H, dh = q.shape
        W, out = self.window, []
        # a cache slot j holds a token iff j >= W - count (fewer than W seen: zeros before)
        for a in range(0, T, _CHUNK):
            C = min(_CHUNK, T - a)
            s = torch.arange(W + C, device=q.device)  # keys a .. a + W + C - 1
            c = torch.arange(C, device=q.device)[:, None]
            band = (s >= c) & (s <= W + c)  # (C, W + C)
            seen = (a + s)[None, :] >= (W - count.to(q.device))[:, None]  # (B, W + C)
            allowed = band[None, None] & seen[:, None, None, :]  # (B, 1, C, W + C)
            k, v = K[a:a + W + C], V[a:a + W + C]  # (W + C, B, dh)
            # scaled before the product: |q.k| of a half-precision head stays in range
            logits = torch.einsum("cbhd,sbd->bhcs", q[a:a + C] * dh ** -0.5, k)
            up = torch.promote_types(logits.dtype, torch.float32)  # half -> float32
            logits = logits.to(up).masked_fill(~allowed, float("-inf"))
            p = torch.softmax(logits, dim=-1).to(v.dtype)  # (B, H, C, W + C)
            out.append(torch.einsum("bhcs,sbd->cbhd", p, v))
        return torch.cat(out)

    def scan(self, x: Tensor, state=None, lengths=None) -> tuple[Tensor, tuple]:
        """``x`` (T, B, d) [(B, T, d)] after ``state`` (None: no tokens seen), ``lengths`` (B,)
        or None -> ``(y, state)``: the state at each sequence's last valid step."""
        x = _time_major(x, self.d_model, self.batch_first)
        T, B = x.shape[:2]
        lens, mask = _lengths(lengths, T, B, x.device)
        if mask is not None:
            x = x.masked_fill(~mask, 0.0)
        k0, v0, count = self.init_state(B) if state is None else state
        n = self.temporal_norm(x)
        pos = count.to(x.device)[None, :] + torch.arange(T, device=x.device)[:, None]  # (T, B)
        q = rope(self.proj_q(n).view(T, B, self.num_heads, self.head_dim), pos)
        k = rope(self.proj_k(n), pos)  # (T, B, dh)
        K = torch.cat([k0.transpose(0, 1), k])  # (W + T, B, dh), oldest first
        V = torch.cat([v0.transpose(0, 1), self.proj_v(n)])
        y = self.proj_final(self._attend(q, K, V, count).reshape(T, B, self.d_model))
        x = _add_gated_mlp(self, x + self.drop(y))
        if mask is not None:
            x = x.masked_fill(~mask, 0.0)
        # each sequence's last W keys end at index W + len - 1: slots [len, len + W)
        n_new = torch.full((B,), T, dtype=torch.int64) if lens is None else lens
        idx = n_new.to(x.device)[None, :] + torch.arange(self.window, device=x.device)[:, None]
        idx = idx.unsqueeze(-1).expand(self.window, B, self.head_dim)  # (W, B, dh)
        state = (K.gather(0, idx).transpose(0, 1), V.gather(0, idx).transpose(0, 1),
                 count + n_new.to(count.device))
        return (x.transpose(0, 1) if self.batch_first else x), state

    def forward(self, x: Tensor, lengths=None) -> Tensor:
        """``x`` (T, B, d) [(B, T, d) if batch_first], ``lengths`` (B,) or None -> same shape."""
        return self.scan(x, lengths=lengths)[0]

    def step(self, x_t: Tensor, state=None) -> tuple[Tensor, tuple]:
        """One step, ``x_t`` (B, d) -> ``(y_t (B, d), state)``; stepping gives forward's."""
        if not isinstance(x_t, Tensor) or x_t.dim() != 2 or x_t.shape[-1] != self.d_model:
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"x_t: expected shape (B, d_model={self.d_model}), got {got}")
        y, state = self.scan(x_t.unsqueeze(1) if self.batch_first else x_t.unsqueeze(0), state)
        return y.squeeze(1 if self.batch_first else 0), state
