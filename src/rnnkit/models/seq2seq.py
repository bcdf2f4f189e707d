"""Sequence to sequence with attention: a bidirectional rnnkit encoder and an attentive decoder.

For a source ``x_1..x_S`` and target ``y_1..y_T`` (``y_0`` = ``<bos>``), following Luong et
al. (2015) with input feeding::

    m_1..m_S   = BiRNN(E_src x)                       (B, S, 2H), any rnnkit cell, with lengths
    s_0        = tanh(W_init [->m_{S_b}; <-m_1])       last forward + first backward state
    s_t        = Cell([E_tgt y_{t-1}; h~_{t-1}], s_{t-1})   GRU or LSTM cell; h~_0 = 0
    e_{t,i}    = score(s_t, m_i), -inf where i > S_b  (padding mask)
                   dot:      s_t . m_i                (needs Hd = 2H)
                   general:  s_t . W_a m_i
                   additive: v . tanh(W_q s_t + W_k m_i)      (Bahdanau et al. 2015)
    a_t        = softmax_i(e_t)                        (B, S); attention weights, sum to 1
    c_t        = sum_i a_{t,i} m_i                     (B, 2H)
    h~_t       = tanh(W_c [c_t; s_t])                  (B, Hd); fed to step t+1 (input feeding)
    p(y_t | .) = softmax(W_o dropout(h~_t) + b)        W_o may be tied to E_tgt (Hd = embed)

Training uses teacher forcing: with ratio ``r`` < 1 each step feeds the gold ``y_{t-1}``
with probability ``r``, else the model's own previous argmax. Decoding is greedy
(:meth:`Seq2Seq.greedy`) or batched beam search (:meth:`Seq2Seq.beam_search`) whose final
ranking divides the log-probability by the GNMT length penalty ``((5 + |y|) / 6) ** alpha``.
Both return the attention weights for plots.

The encoder runs with lengths (padded steps never change its state) and the attention
masks padding, so a sentence decodes the same alone or in a padded batch.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``E`` embedding, ``H``
encoder hidden (per direction), ``Hd`` decoder hidden, ``V`` target vocabulary, ``K`` beam.

Example::

    cfg = Seq2SeqConfig(embed_size=64, hidden_size=64, dec_hidden_size=64)
    model = Seq2Seq(cfg, src_vocab=100, tgt_vocab=80)
    logits, attn = model(src, src_lengths, tgt_in)         # (B, T, V), (B, T, S)
    hyps = model.beam_search(src, src_lengths, beam_size=5, max_len=50)
    hyps[0]["tokens"], hyps[0]["attention"]                # [id, ...], (T', S) tensor
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["Seq2SeqConfig", "Attention", "Seq2Seq", "length_penalty"]


@dataclass
class Seq2SeqConfig:
    """Hyperparameters of :class:`Seq2Seq` (the ``model:`` section of a translation recipe).

    Attributes:
        cell: encoder cell for :func:`rnnkit.layers.build_layer` ("gru", "lstm", ...), or a
            block ("mamba", "griffin", "xlstm", "deep_lru"): a bidirectional stack of them
            (:func:`rnnkit.models.sequence.build_sequence_layer`), whose outputs the bridge
            and the attention read as they read a BiRNN's.
        decoder_cell: "gru" or "lstm"; None = ``cell`` when that is gru/lstm, else "gru".
        embed_size: E, source and target embeddings.
        hidden_size: H of the bidirectional encoder, per direction.
        num_layers: stacked encoder layers.
        dec_hidden_size: Hd of the decoder cell and of the attentional state h~.
        attention: "general", "dot" (Luong) or "additive" (Bahdanau); "bahdanau" = additive.
        attn_size: hidden size of additive attention.
        input_feeding: feed h~_{t-1} into step t (Luong et al.).
        dropout: on embeddings, between encoder layers, on the memory and before W_o.
        teacher_forcing: probability of feeding the gold previous token in training.
        tie_embeddings: share E_tgt and W_o (needs dec_hidden_size == embed_size).
        extras: extra keyword arguments for build_layer (e.g. ``backend``), or the blocks'.
    """

    cell: str = "gru"
    decoder_cell: Literal["gru", "lstm"] | None = None
    embed_size: int = 256
    hidden_size: int = 256
    num_layers: int = 1
    dec_hidden_size: int = 256
    attention: Literal["general", "dot", "additive", "bahdanau"] = "general"
    attn_size: int = 256
    input_feeding: bool = True
    dropout: float = 0.3
    teacher_forcing: float = 1.0
    tie_embeddings: bool = True
    extras: dict[str, Any] = field(default_factory=dict)


def length_penalty(length: Tensor, alpha: float) -> Tensor:
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (Wu et al. 2016); 1 when alpha = 0."""
    return ((5.0 + length.float()) / 6.0) ** alpha


class Attention(nn.Module):
    """Attention weights and context over a padded memory.

    ``prepare(memory)`` computes the step-independent keys once; ``forward(query, memory,
    keys, mask)`` -> ``(context (B, 2H), weights (B, S))``. ``mask`` (B, S) is True on real
    source positions; masked positions get weight exactly 0.
    """

    def __init__(self, kind: str, query_size: int, memory_size: int, attn_size: int):
        super().__init__()
        self.kind = "additive" if kind == "bahdanau" else kind
        if self.kind == "dot" and query_size != memory_size:
            raise ValueError(f"attention='dot' needs dec_hidden_size == 2 * hidden_size "
                             f"({query_size} != {memory_size}); use 'general'")
        if self.kind == "general":
            self.W_a = nn.Linear(memory_size, query_size, bias=False)
        elif self.kind == "additive":
            self.W_k = nn.Linear(memory_size, attn_size, bias=False)
            self.W_q = nn.Linear(query_size, attn_size)
            self.v = nn.Linear(attn_size, 1, bias=False)
        elif self.kind != "dot":
            raise ValueError(f"attention: unknown kind {kind!r}; expected general, dot or additive")

    def prepare(self, memory: Tensor) -> Tensor:
        """Keys (B, S, *) for all steps of one batch."""
        if self.kind == "general":
            return self.W_a(memory)  # (B, S, Hd)
        if self.kind == "additive":
            return self.W_k(memory)  # (B, S, A)
        return memory

    def forward(
        self, query: Tensor, memory: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        if self.kind == "additive":
            e = self.v(torch.tanh(keys + self.W_q(query)[:, None])).squeeze(-1)  # (B, S)
        else:
            e = (keys * query[:, None]).sum(-1)  # (B, S); cheaper than many tiny bmm on CPU
        a = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=-1)  # (B, S)
        return (a.unsqueeze(-1) * memory).sum(1), a  # (B, 2H), (B, S)


class Seq2Seq(nn.Module):
    """Encoder-decoder with attention (see the module docstring for the equations).

    Args:
        config: :class:`Seq2SeqConfig`.
        src_vocab / tgt_vocab: vocabulary sizes.
        pad_id / bos_id / eos_id: special ids (the same in both vocabularies).

    Forward: ``src (B, S)``, ``src_lengths (B,)``, ``tgt_in (B, T)`` (``<bos> y_1 ..``) ->
    ``(logits (B, T, V), attention (B, T, S))``.
    """

    def __init__(self, config: Seq2SeqConfig, src_vocab: int, tgt_vocab: int, *,
                 pad_id: int = 0, bos_id: int = 2, eos_id: int = 3):
        super().__init__()
        from rnnkit.models.sequence import build_sequence_layer

        c = self.config = config
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        if not 0.0 <= c.teacher_forcing <= 1.0:
            raise ValueError(
                f"model.teacher_forcing={c.teacher_forcing}: expected a probability in [0, 1]"
            )
        if c.tie_embeddings and c.dec_hidden_size != c.embed_size:
            raise ValueError(f"model.tie_embeddings needs dec_hidden_size == embed_size "
                             f"({c.dec_hidden_size} != {c.embed_size})")
        E, H, Hd = c.embed_size, c.hidden_size, c.dec_hidden_size
        dec = c.decoder_cell or (c.cell if c.cell in ("gru", "lstm") else "gru")
        self.dec_kind = dec
        self.src_embed = nn.Embedding(src_vocab, E, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, E, padding_idx=pad_id)
        # a cell stacks through build_layer (dropout between its layers); a block name builds a
        # bidirectional stack of those blocks, model.dropout its residual dropout from 2 on
        self.encoder = build_sequence_layer(c.cell, E, H, num_layers=c.num_layers,
                                            dropout=c.dropout if c.num_layers > 1 else 0.0,
                                            bidirectional=True, batch_first=True, **c.extras)
        self.bridge = nn.Linear(2 * H, Hd * (2 if dec == "lstm" else 1))
        cell_in = E + (Hd if c.input_feeding else 0)
        self.cell = nn.GRUCell(cell_in, Hd) if dec == "gru" else nn.LSTMCell(cell_in, Hd)
        self.attention = Attention(c.attention, Hd, 2 * H, c.attn_size)
        self.combine = nn.Linear(2 * H + Hd, Hd, bias=False)
        self.out = nn.Linear(Hd, tgt_vocab)
        if c.tie_embeddings:
            self.out.weight = self.tgt_embed.weight
        self.drop = nn.Dropout(c.dropout)

    # ------------------------------------------------------------------ encoder

    def encode(self, src: Tensor, src_lengths: Tensor) -> dict[str, Any]:
        """Memory, keys, mask and initial decoder state of a source batch."""
        B, S = src.shape
        lengths = src_lengths.to(src.device)
        m, _ = self.encoder(self.drop(self.src_embed(src)), lengths=src_lengths.cpu())  # (B, S, 2H)
        H = m.shape[-1] // 2
        idx = torch.arange(B, device=src.device)
        last = torch.cat([m[idx, lengths - 1, :H], m[:, 0, H:]], dim=-1)  # (B, 2H)
        s0 = torch.tanh(self.bridge(last))  # (B, Hd) or (B, 2Hd)
        state = s0 if self.dec_kind == "gru" else tuple(s0.chunk(2, dim=-1))
        m = self.drop(m)
        mask = torch.arange(S, device=src.device)[None, :] < lengths[:, None]  # (B, S)
        return {"memory": m, "keys": self.attention.prepare(m), "mask": mask, "state": state}

    # ------------------------------------------------------------------ one decoder step

    def step(self, y_prev: Tensor, feed: Tensor, state: Any, enc: dict[str, Any]):
        """One step: ``(h~_t (B, Hd), new state, attention (B, S))``."""
        x = self.drop(self.tgt_embed(y_prev))  # (B, E)
        if self.config.input_feeding:
            x = torch.cat([x, feed], dim=-1)  # (B, E + Hd)
        state = self.cell(x, state)
        s = state if self.dec_kind == "gru" else state[0]
        ctx, a = self.attention(s, enc["memory"], enc["keys"], enc["mask"])
        h = torch.tanh(self.combine(torch.cat([ctx, s], dim=-1)))  # (B, Hd)
        return h, state, a

    def logits(self, h: Tensor) -> Tensor:
        """``W_o dropout(h~) + b``: (..., Hd) -> (..., V)."""
        return self.out(self.drop(h))

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                teacher_forcing: float | None = None) -> tuple[Tensor, Tensor]:
        r = self.config.teacher_forcing if teacher_forcing is None else teacher_forcing
        r = r if self.training else 1.0
        enc = self.encode(src, src_lengths)
        B, T = tgt_in.shape
        feed = enc["memory"].new_zeros(B, self.config.dec_hidden_size)
        state, hs, attn, step_logits = enc["state"], [], [], []
        y = tgt_in[:, 0]
        for t in range(T):
            feed, state, a = self.step(y, feed, state, enc)
            hs.append(feed)
            attn.append(a)
            if r < 1.0:  # the next input may be the model's own guess: project now
                step_logits.append(self.logits(feed))
                if t + 1 < T:
                    gold = torch.rand(B, device=src.device) < r
                    y = torch.where(gold, tgt_in[:, t + 1], step_logits[-1].argmax(-1).detach())
            elif t + 1 < T:
                y = tgt_in[:, t + 1]
        logits = torch.stack(step_logits, 1) if r < 1.0 else self.logits(torch.stack(hs, 1))
        return logits, torch.stack(attn, 1)  # (B, T, V), (B, T, S)

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def greedy(self, src: Tensor, src_lengths: Tensor, max_len: int = 100) -> list[dict[str, Any]]:
        """Argmax decoding. Returns per sentence ``{"tokens": [...] (no <eos>), "score":
        sum of log-probabilities (with <eos>), "attention": (len(tokens) + 1, S_b)}``."""
        enc = self.encode(src, src_lengths)
        B = src.shape[0]
        feed = enc["memory"].new_zeros(B, self.config.dec_hidden_size)
        state = enc["state"]
        y = torch.full((B,), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        score = torch.zeros(B, device=src.device)
        toks, attn = [], []
        for _ in range(max_len):
            feed, state, a = self.step(y, feed, state, enc)
            logp = torch.log_softmax(self.logits(feed).float(), -1)  # (B, V)
            lp, y = logp.max(-1)
            score = score + torch.where(done, torch.zeros_like(lp), lp)
            y = y.masked_fill(done, self.pad_id)
            toks.append(y)
            attn.append(a)
            done = done | (y == self.eos_id)
            if bool(done.all()):
                break
        Y, A = torch.stack(toks, 1).tolist(), torch.stack(attn, 1)  # (B, T'), (B, T', S)
        return [self._hyp(Y[b], float(score[b]), A[b, :, :int(src_lengths[b])]) for b in range(B)]

    def _hyp(self, ys: list[int], score: float, attn: Tensor) -> dict[str, Any]:
        n = ys.index(self.eos_id) if self.eos_id in ys else len(ys)
        ys = [t for t in ys[:n] if t != self.pad_id]
        return {"tokens": ys, "score": score, "attention": attn[:n + 1].cpu()}

    @torch.no_grad()
    def beam_search(self, src: Tensor, src_lengths: Tensor, beam_size: int = 5, max_len: int = 100,
                    alpha: float = 0.6) -> list[dict[str, Any]]:
        """Batched beam search (K = ``beam_size`` hypotheses per sentence).

        Each step extends every live hypothesis by every token and keeps the K best per
        sentence by total log-probability; a hypothesis that emitted ``<eos>`` stays in the
        beam with its score frozen (it only extends by padding at cost 0). The search stops
        when every hypothesis has ended or after ``max_len`` steps, and the winner of each
        sentence maximises ``log p(y) / length_penalty(|y| + 1, alpha)``. With K = 1 this is
        exactly :meth:`greedy`. Returns the same dicts as :meth:`greedy`.
        """
        if beam_size < 1:
            raise ValueError(f"beam_size={beam_size}: expected a positive integer")
        enc = self.encode(src, src_lengths)
        B, K, dev = src.shape[0], beam_size, src.device
        rep = torch.arange(B, device=dev).repeat_interleave(K)  # (B*K,) row -> sentence
        enc = {
            k: (tuple(s[rep] for s in v) if isinstance(v, tuple) else v[rep])
            for k, v in enc.items()
        }
        feed = enc["memory"].new_zeros(B * K, self.config.dec_hidden_size)
        state = enc["state"]
        y = torch.full((B * K,), self.bos_id, dtype=torch.long, device=dev)
        score = torch.full((B, K), float("-inf"), device=dev)
        score[:, 0] = 0.0  # all beams start identical: expand only the first
        done = torch.zeros(B * K, dtype=torch.bool, device=dev)
        length = torch.zeros(B * K, dtype=torch.long, device=dev)
        hist = torch.empty(B * K, 0, dtype=torch.long, device=dev)
        attn_hist = enc["memory"].new_empty(B * K, 0, src.shape[1])
        for _ in range(max_len):
            feed, state, a = self.step(y, feed, state, enc)
            logp = torch.log_softmax(self.logits(feed).float(), -1)  # (B*K, V)
            V = logp.shape[-1]
            frozen = torch.full_like(logp[0], float("-inf"))
            frozen[self.pad_id] = 0.0
            logp = torch.where(done[:, None], frozen, logp)
            cand = (score.view(B * K, 1) + logp).view(B, K * V)
            score, flat = cand.topk(K, dim=-1)  # (B, K)
            src_beam = (flat // V + torch.arange(B, device=dev)[:, None] * K).view(-1)  # (B*K,)
            y = (flat % V).view(-1)
            done, length = done[src_beam], length[src_beam]
            length = length + (~done).long()
            hist = torch.cat([hist[src_beam], y[:, None]], 1)
            attn_hist = torch.cat([attn_hist[src_beam], a[src_beam][:, None]], 1)
            feed = feed[src_beam]
            state = (
                tuple(s[src_beam] for s in state) if isinstance(state, tuple) else state[src_beam]
            )
            done = done | (y == self.eos_id)
            if bool(done.all()):
                break
        final = score.view(-1) / length_penalty(length, alpha)
        best = final.view(B, K).argmax(-1) + torch.arange(B, device=dev) * K  # (B,)
        H = hist.tolist()
        return [self._hyp(H[r], float(score.view(-1)[r]), attn_hist[r, :, :int(src_lengths[b])])
                for b, r in enumerate(best.tolist())]
