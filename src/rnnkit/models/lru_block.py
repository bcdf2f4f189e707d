"""The deep LRU's residual block (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks
for Long Sequences", Figure 1 and the code of its appendix A)::

    u = GeLU(LRU(LayerNorm(x)))                   the LRU: rnnkit.layers.LRU(d, d), width kept
    x = x + drop(W_1 drop(u) + b_1  *  sigmoid(W_2 drop(u) + b_2))       a GLU, (d, d) each

with the LRU of :mod:`rnnkit.cells.lru` (``y = Re(C s) + D x``, ``D`` diagonal as the paper's,
a zero-initialised bias), its ring ``r_min``, ``r_max`` and ``max_phase`` passed through, and
GeLU the tanh approximation (JAX's default, which the paper's code uses). A
:class:`~rnnkit.models.blocks.BlockStack` of ``"deep_lru"`` blocks is the paper's deep model
between its encoder and decoder, with a final LayerNorm.

Departures: the paper normalises with batch or layer normalisation; here LayerNorm (batch
statistics would mix the padded steps of other sequences into a valid one, and a streamed
step has no batch of steps). Dropout is the paper's, after GeLU and after the GLU, at the
block's ``dropout``.

Padded batches: ``x`` is zeroed past each length, the LRU gets ``lengths=`` and every other
part is per step; the output is zero past each length. Streaming: ``step(x_t, state)`` with
the LRU's state ``(Re s, Im s)``, each (1, B, N).
"""
from __future__ import annotations

import math

import torch  # noqa: F401  (the docstring examples run in this namespace)
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells.base import check_flag
from rnnkit.layers import LRU

from ._block_parts import _lengths, _positive_int, _probability, _time_major

__all__ = ["LRUBlock"]


class LRUBlock(nn.Module):
    """The deep LRU's block: LayerNorm, the LRU, GeLU and a GLU, added to the input.

    Args:
        d_model: features of ``x`` (d; the LRU's input and output).
        state_size: the LRU's complex state N (default ``d_model``).
        r_min, r_max: the ring of ``|lambda|`` at initialisation (0, 1: the paper's
            defaults; 0.9, 0.999 for its long-range tasks). max_phase: (2 pi).
        batch_first: ``x`` is (B, T, d). eps: LayerNorm's (1e-5).
        dropout: after GeLU and after the GLU (0).

    Example::

        >>> block = LRUBlock(16, state_size=32, r_min=0.9, r_max=0.999)
        >>> block(torch.randn(10, 2, 16), lengths=torch.tensor([10, 4])).shape
        torch.Size([10, 2, 16])
        >>> y_t, (s_re, s_im) = block.step(torch.randn(2, 16))       # streaming, one step
        >>> y_t.shape, s_re.shape
        (torch.Size([2, 16]), torch.Size([1, 2, 32]))
    """

    def __init__(self, d_model: int, *, state_size: int | None = None, r_min: float = 0.0,
                 r_max: float = 1.0, max_phase: float = 2 * math.pi, batch_first: bool = False,
                 eps: float = 1e-5, dropout: float = 0.0, device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        d = self.d_model = _positive_int("d_model", d_model)
        N = d if state_size is None else _positive_int("state_size", state_size)
        self.batch_first = check_flag("batch_first", batch_first)
        self.eps = eps
        self.drop = nn.Dropout(_probability("dropout", dropout))
        self.norm = nn.LayerNorm(d, eps=eps, **f)
        self.lru = LRU(d, d, state_size=N, r_min=r_min, r_max=r_max, max_phase=max_phase, **f)
        self.out1 = nn.Linear(d, d, **f)
        self.out2 = nn.Linear(d, d, **f)

    def _branch(self, y: Tensor) -> Tensor:
        u = self.drop(F.gelu(y, approximate="tanh"))
        return self.drop(self.out1(u) * torch.sigmoid(self.out2(u)))

    def init_state(self, batch: int) -> tuple[Tensor, Tensor]:
        """Zeros: the LRU's ``(Re s, Im s)``, each (1, B, N)."""
        return self.lru.init_state(batch)

    def forward(self, x: Tensor, lengths=None) -> Tensor:
        """``x`` (T, B, d) [(B, T, d) if batch_first], ``lengths`` (B,) or None -> same shape."""
        return self.scan(x, lengths=lengths)[0]

    def scan(self, x: Tensor, state=None, lengths=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """:meth:`forward` from a state (None: zeros) and the state at each sequence's last
        valid step, so that running a sequence in pieces gives the outputs of running it whole."""
        x = _time_major(x, self.d_model, self.batch_first)
        lens, mask = _lengths(lengths, x.shape[0], x.shape[1], x.device)
        if mask is not None:
            x = x.masked_fill(~mask, 0.0)
        y, state = self.lru(self.norm(x), state, lengths=lens)
        x = x + self._branch(y)
        if mask is not None:
            x = x.masked_fill(~mask, 0.0)
        return (x.transpose(0, 1) if self.batch_first else x), state

    def step(self, x_t: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step, ``x_t`` (B, d) -> ``(y_t (B, d), state)``; stepping gives forward's."""
        if not isinstance(x_t, Tensor) or x_t.dim() != 2 or x_t.shape[-1] != self.d_model:
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"x_t: expected shape (B, d_model={self.d_model}), got {got}")
        y, state = self.lru.step(self.norm(x_t), state)
        return x_t + self._branch(y), state
