"""Piano-roll RNN: any rnnkit cell over 88 keys, with independent Bernoulli or RNN-NADE outputs.

The RNN reads the previous step and predicts the next (``v_0`` is silence)::

    u_t      = RNN(v_{t-1}, u_{t-1})                    any cell, stacked; (B, T, H)
    p(v_1..v_T) = prod_t P(v_t | u_t)

with one of two output models for the ``K = 88`` keys of a step:

- ``bernoulli`` (Chung et al. 2014): the keys are independent given ``u_t``::

      P(v | u) = prod_k sigmoid(z_k)^v_k (1 - sigmoid(z_k))^(1 - v_k),   z = W_o u + b_o

- ``nade`` (RNN-NADE, Boulanger-Lewandowski et al. 2012): a NADE over the keys, low to
  high, whose two bias vectors are read from the RNN state::

      b_v(t) = b_v + W_uv u_t     (K,)          b_h(t) = b_h + W_uh u_t     (N,)
      h_k    = sigmoid(b_h(t) + W[:, <k] v_<k)  (N,)   the NADE's hidden units before key k
      P(v_k = 1 | v_<k, u_t) = sigmoid(b_v(t)_k + V_k . h_k)
      log P(v | u_t) = sum_k log P(v_k | v_<k, u_t)            exact, one pass over the keys

The NADE's ``K`` hidden pre-activations are one cumulative sum, ``a_k = b_h + sum_{j<k} W_j
v_j``, so the exact log-likelihood of every frame costs O(K N) with no loop; sampling is
ancestral, key by key (:meth:`NADE.sample`).

Shapes: ``B`` batch, ``T`` steps, ``K`` keys (88), ``H`` RNN hidden size, ``N`` NADE hidden
units, ``F`` frames (the real steps of a batch, padding removed).

Example::

    cfg = MusicConfig(cell="gru", hidden_size=64, output="nade", nade_hidden=32)
    model = PianoRollRNN(cfg)
    x = torch.bernoulli(torch.full((2, 10, 88), 0.05))       # (B, T, K) rolls
    logp = model.log_prob(x, torch.tensor([10, 6]))           # (B, T), 0 past each length
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MusicConfig", "NADE", "PianoRollRNN", "frame_counts"]


@dataclass
class MusicConfig:
    """Hyperparameters of :class:`PianoRollRNN` (the ``model:`` section of a music recipe).

    Attributes:
        cell: recurrent cell for :func:`rnnkit.layers.build_layer` ("rnn_tanh", "gru", "lstm"...).
            A block, "griffin", "mamba", "xlstm" or "deep_lru", builds their stack instead
            (:func:`rnnkit.models.sequence.build_sequence_layer`).
        hidden_size: H of every recurrent layer.
        num_layers: stacked layers.
        dropout: between layers and on the RNN's output.
        input_dropout: on the input steps (notes of the previous step dropped, rest scaled).
        output: "bernoulli" (independent keys) or "nade" (RNN-NADE).
        nade_hidden: N, the NADE's hidden units.
        extras: extra keyword arguments for build_layer (e.g. backend, zoneout).
    """

    cell: str = "gru"
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0
    input_dropout: float = 0.0
    output: Literal["bernoulli", "nade"] = "bernoulli"
    nade_hidden: int = 64
    extras: dict[str, Any] = field(default_factory=dict)


class NADE(nn.Module):
    """A NADE over ``K`` binary variables whose biases are given per frame (RNN-NADE's output).

    Args:
        num_keys: K.
        hidden: N.

    ``log_prob(v (F, K), b_v (F, K), b_h (F, N)) -> (F,)``; ``sample(b_v, b_h) -> (F, K)``.
    """

    def __init__(self, num_keys: int, hidden: int):
        super().__init__()
        self.W = nn.Parameter(torch.empty(num_keys, hidden))  # row k: key k's input weights
        self.V = nn.Parameter(torch.empty(num_keys, hidden))  # row k: key k's output weights
        nn.init.normal_(self.W, std=0.05)
        nn.init.normal_(self.V, std=hidden ** -0.5)

    def logits(self, v: Tensor, b_v: Tensor, b_h: Tensor) -> Tensor:
        """``z_k = b_v_k + V_k . sigmoid(b_h + sum_{j<k} W_j v_j)`` for every key: (F, K)."""
        contrib = v.unsqueeze(-1) * self.W  # (F, K, N): W_j v_j
        a = b_h.unsqueeze(1) + torch.cumsum(contrib, dim=1) - contrib  # (F, K, N): j < k only
        return b_v + (torch.sigmoid(a) * self.V).sum(-1)  # (F, K)

    def log_prob(self, v: Tensor, b_v: Tensor, b_h: Tensor) -> Tensor:
        """Exact ``log P(v)`` of each frame (F,)."""
        z = self.logits(v, b_v, b_h)
        return -F.binary_cross_entropy_with_logits(z, v, reduction="none").sum(-1)

    @torch.no_grad()
    def sample(self, b_v: Tensor, b_h: Tensor, *, temperature: float = 1.0,
               greedy: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral sampling, key by key: ``v_k ~ Bernoulli(sigmoid(z_k / temperature))``
        (``greedy``: ``v_k = [z_k > 0]``, each key's most likely value given those below)."""
        Fr, K = b_v.shape
        v = b_v.new_zeros(Fr, K)
        a = b_h.clone()  # (F, N)
        for k in range(K):
            z = b_v[:, k] + (torch.sigmoid(a) * self.V[k]).sum(-1)  # (F,)
            if greedy:
                vk = (z > 0).to(v.dtype)
            else:
                p = torch.sigmoid(z / temperature)
                vk = (torch.rand(p.shape, generator=generator, device=p.device) < p).to(v.dtype)
            v[:, k] = vk
            a = a + vk.unsqueeze(-1) * self.W[k]
        return v


def frame_counts(pred: Tensor, target: Tensor) -> tuple[int, int, int]:
    """``(TP, FP, FN)`` summed over frames and keys (Bay et al. 2009's frame-level accuracy
    is ``TP / (TP + FP + FN)`` of these sums)."""
    p, t = pred > 0.5, target > 0.5
    return int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())


class PianoRollRNN(nn.Module):
    """An RNN over piano-roll steps with a Bernoulli or NADE output (module docstring).

    Args:
        config: :class:`MusicConfig`.
        num_keys: K (88 for the piano).

    ``forward(x (B, T, K), lengths=None) -> u (B, T, H)``: the conditioning of each step,
    from the steps before it (the RNN reads ``x`` shifted right by one, silence first).
    ``advance(inp (B, T, K), state) -> (u, state)`` runs the RNN on given inputs, for
    generation with the state carried.
    """

    def __init__(self, config: MusicConfig, num_keys: int = 88):
        super().__init__()
        c = config
        for name in ("hidden_size", "num_layers", "nade_hidden"):
            if getattr(c, name) < 1:
                raise ValueError(f"model.{name}={getattr(c, name)}; expected a positive integer")
        for name in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(c, name) < 1.0:
                raise ValueError(f"model.{name}={getattr(c, name)}; expected a probability in "
                                 "[0, 1)")
        if c.output not in ("bernoulli", "nade"):
            raise ValueError(f"model.output={c.output!r}; expected 'bernoulli' or 'nade'")
        if c.extras.get("bidirectional"):
            raise ValueError("model.extras.bidirectional: a generative model must be "
                             "unidirectional (the backward direction would see the notes it "
                             "predicts)")
        from .sequence import build_sequence_layer

        self.config, self.num_keys = c, num_keys
        self.rnn = build_sequence_layer(c.cell, num_keys, c.hidden_size,
                                        num_layers=c.num_layers, dropout=c.dropout,
                                        batch_first=True, **c.extras)
        self.drop, self.drop_in = nn.Dropout(c.dropout), nn.Dropout(c.input_dropout)
        if c.output == "bernoulli":
            self.out = nn.Linear(c.hidden_size, num_keys)
        else:
            self.out = nn.Linear(c.hidden_size, num_keys + c.nade_hidden)  # [W_uv; W_uh]
            self.nade = NADE(num_keys, c.nade_hidden)

    @torch.no_grad()
    def init_output_bias(self, rate: Tensor) -> None:
        """Start each key's output bias at the log-odds of its training rate (K,): the first
        steps then learn structure instead of how rare each note is."""
        p = rate.to(self.out.bias).clamp(1e-4, 1 - 1e-4)
        self.out.bias[:self.num_keys] = torch.log(p) - torch.log1p(-p)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.size(-1) != self.num_keys:
            raise ValueError(f"PianoRollRNN expects (B, T, {self.num_keys}) piano rolls, got "
                             f"shape {tuple(x.shape)}")
        inp = torch.cat([x.new_zeros(x.size(0), 1, x.size(2)), x[:, :-1]], dim=1)  # v_{t-1}
        return self.advance(inp, None, lengths=lengths)[0]

    def advance(self, inp: Tensor, state: Any = None, *, lengths: Tensor | None = None
                ) -> tuple[Tensor, Any]:
        """``u_t = RNN(inp_t, u_{t-1})`` from ``state``: ``(u (B, T, H), new state)``."""
        kw = {} if lengths is None else {"lengths": lengths}
        u, state = self.rnn(self.drop_in(inp), state, **kw)  # (B, T, H)
        return self.drop(u), state

    def step_log_prob(self, u: Tensor, v: Tensor) -> Tensor:
        """``log P(v_f | u_f)`` of frames: ``u`` (F, H), ``v`` (F, K) -> (F,)."""
        z = self.out(u)  # (F, K) or (F, K + N)
        if self.config.output == "bernoulli":
            return -F.binary_cross_entropy_with_logits(z, v, reduction="none").sum(-1)
        return self.nade.log_prob(v, z[:, :self.num_keys], z[:, self.num_keys:])

    def log_prob(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``log P(x_t | x_<t)`` of every step (B, T); 0 past each sequence's length."""
        B, T, _ = x.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        mask = torch.arange(T)[None, :] < lengths.cpu()[:, None]  # (B, T)
        u = self(x, lengths=lengths)
        out = x.new_zeros(B, T)
        m = mask.to(x.device)
        out[m] = self.step_log_prob(u[m], x[m])  # frames only: (F, H), (F, K)
        return out

    @torch.no_grad()
    def predict_frames(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Each real step's most likely notes given the true past (B, T, K), 0 past lengths:
        ``p > 0.5`` per key (bernoulli), or the NADE's greedy pass (each key's most likely
        value given the keys below it)."""
        B, T, K = x.shape
        mask = (torch.arange(T)[None, :] < lengths.cpu()[:, None]).to(x.device)
        u = self(x, lengths=lengths)
        z = self.out(u[mask])  # (F, ...)
        out = x.new_zeros(B, T, K)
        if self.config.output == "bernoulli":
            out[mask] = (z > 0).to(x.dtype)
        else:
            out[mask] = self.nade.sample(z[:, :K], z[:, K:], greedy=True)
        return out

    @torch.no_grad()
    def sample_step(self, u: Tensor, *, temperature: float = 1.0,
                    generator: torch.Generator | None = None) -> Tensor:
        """One step's notes drawn from ``P(v | u)``: ``u`` (B, H) -> (B, K) in {0, 1}."""
        z = self.out(u)
        if self.config.output == "nade":
            K = self.num_keys
            return self.nade.sample(z[:, :K], z[:, K:], temperature=temperature,
                                    generator=generator)
        p = torch.sigmoid(z / temperature)
        return (torch.rand(p.shape, generator=generator, device=p.device) < p).to(u.dtype)
