"""The two recurrent networks behind the anomaly detectors (any rnnkit cell, or a stack of
published blocks: "mamba", "griffin", "xlstm", "deep_lru").

**Predictor** (LSTM-AD, Malhotra et al. 2015): a stacked recurrent layer read over the
series, a linear head predicting the next ``l`` values from each state::

    h_t, s_t = RNN(x_t, s_{t-1})
    y_t      = W h_t + b           y_t[j-1] predicts x_{t+j},  j = 1..l

**EncDecAE** (EncDec-AD, Malhotra et al. 2016): an encoder reads a window ``x_1..x_L``; its
final state starts a decoder that reconstructs the window in reverse order::

    h^E_L          = Enc(x_1..x_L)                  (its output at step L, its state s^E_L)
    s^D_L = s^E_L,  x'_L = W h^E_L + b
    h^D_{i-1}      = Dec(in_i, h^D_i),  x'_{i-1} = W h^D_{i-1} + b     i = L..2

with ``in_i = x_i`` while training (teacher forcing) and ``in_i = x'_i`` at inference.

Shapes: ``T`` time, ``B`` batch, ``L`` window, ``H`` hidden, ``l`` horizon; inputs are
time-major ``(T, B, 1)``.

Example::

    p = Predictor("lstm", hidden_size=32, num_layers=1, horizon=4)
    y, s = p(torch.randn(100, 1, 1))            # (100, 1, 4)
    ae = EncDecAE("lstm", hidden_size=32, num_layers=1)
    rec = ae(torch.randn(32, 8, 1))             # (32, 8, 1), x'_1..x'_L in time order
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Predictor", "EncDecAE"]


def _layer(cell: str, hidden_size: int, num_layers: int) -> nn.Module:
    from rnnkit.models.sequence import build_sequence_layer

    return build_sequence_layer(cell, 1, hidden_size, num_layers=num_layers)


class Predictor(nn.Module):
    """Recurrent next-``l``-values predictor (module docstring)."""

    def __init__(self, cell: str = "lstm", hidden_size: int = 32, num_layers: int = 1,
                 horizon: int = 1):
        super().__init__()
        if hidden_size < 1 or num_layers < 1 or horizon < 1:
            raise ValueError(f"hidden_size={hidden_size}, num_layers={num_layers}, "
                             f"horizon={horizon}: expected positive integers")
        self.rnn = _layer(cell, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, horizon)

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        out, state = self.rnn(x, state)  # (T, B, H)
        return self.head(out), state  # (T, B, l)


class EncDecAE(nn.Module):
    """Recurrent encoder-decoder that reconstructs a window in reverse (module docstring)."""

    def __init__(self, cell: str = "lstm", hidden_size: int = 32, num_layers: int = 1):
        super().__init__()
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"hidden_size={hidden_size}, num_layers={num_layers}: expected "
                             "positive integers")
        self.encoder = _layer(cell, hidden_size, num_layers)
        self.decoder = _layer(cell, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor, teacher_forcing: bool = False) -> Tensor:
        """Reconstruction ``(L, B, 1)`` of windows ``x`` ``(L, B, 1)``, in time order."""
        enc, state = self.encoder(x)
        # the top layer's output at step L: an LSTM's or GRU's h_L, and for a cell whose state
        # is not its output (the LRU's complex s, the mLSTM's matrix) or a block stack, what
        # it outputs there
        first = self.head(enc[-1])[None]  # (1, B, 1): x'_L
        if teacher_forcing:
            rev_in = x.flip(0)[:-1]  # (L-1, B, 1): x_L, ..., x_2
            out, _ = self.decoder(rev_in, state)  # (L-1, B, H)
            rev = torch.cat([first, self.head(out)], dim=0)  # (L, B, 1): x'_L, ..., x'_1
        else:
            steps, prev = [first], first
            for _ in range(x.size(0) - 1):
                out, state = self.decoder(prev, state)  # (1, B, H)
                prev = self.head(out)  # (1, B, 1)
                steps.append(prev)
            rev = torch.cat(steps, dim=0)
        return rev.flip(0)  # back to time order x'_1..x'_L
