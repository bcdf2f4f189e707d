"""Scoring and decoding for the translate pipeline: BLEU and chrF, batched decoding, attention.

:func:`score_translations` scores detokenised hypotheses against one reference each with
sacrebleu (corpus BLEU and chrF; case-insensitively for lowercase models);
:func:`decode` translates encoded sources in length-sorted batches, greedily or by beam
search (:class:`~rnnkit.models.seq2seq.Seq2Seq`); :func:`plot_attention` draws one
sentence's attention weights as a heatmap.  :mod:`rnnkit.tasks.translate` re-exports them.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.data.tokenize import length_buckets
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.train.config import ConfigError

__all__ = ["score_translations", "decode", "plot_attention"]


def score_translations(hyps: list[str], refs: list[str], *,
                       lowercase: bool = False) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenisation, cased) of detokenised
    ``hyps`` against one reference each.

    ``lowercase=True`` (a model trained with ``data.lowercase``, whose output is lowercase)
    compares case-insensitively (sacrebleu's ``lowercase``, applied to hypotheses and
    references alike) and says so: the result then holds ``"lowercase": True``."""
    import sacrebleu
    from sacrebleu.metrics import CHRF

    if len(hyps) != len(refs):
        raise ValueError(f"score_translations: {len(hyps)} hypotheses but {len(refs)} references")
    if not lowercase:
        return {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
                "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score}
    return {"bleu": sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score,
            "chrf": CHRF(lowercase=True).corpus_score(hyps, [refs]).score,
            "lowercase": True}


def _check_length_penalty(alpha: float, where: str) -> None:
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise ConfigError(f"{where}: expected a finite length penalty >= 0, got {alpha}")


def _pad(seqs: list[list[int]], pad: int) -> Tensor:
    T = max(len(s) for s in seqs)
    return torch.tensor([s + [pad] * (T - len(s)) for s in seqs], dtype=torch.long)  # (B, T)


@torch.no_grad()
def decode(model: Seq2Seq, src_ids: list[list[int]], *, beam_size: int = 1, max_len: int = 100,
           alpha: float = 0.6, batch_size: int = 128) -> list[dict[str, Any]]:
    """Translate encoded sources (each ending in <eos>) in length-sorted batches; returns the
    hypotheses of :meth:`Seq2Seq.greedy` / :meth:`Seq2Seq.beam_search` in input order."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out: list[dict[str, Any] | None] = [None] * len(src_ids)
    for idx in length_buckets([len(s) for s in src_ids], batch_size, shuffle=False):
        batch = [src_ids[i] for i in idx]
        src = _pad(batch, model.pad_id).to(dev)
        lengths = torch.tensor([len(s) for s in batch])
        n = min(max_len, 2 * int(lengths.max()) + 10)
        hyps = (model.greedy(src, lengths, n) if beam_size == 1
                else model.beam_search(src, lengths, beam_size, n, alpha))
        for i, h in zip(idx, hyps):
            out[i] = h
    model.train(was)
    return out  # type: ignore[return-value]


def plot_attention(weights, src_tokens: list[str], tgt_tokens: list[str], path: str | Path,
                   title: str | None = None) -> Path:
    """Heatmap PNG of attention ``weights`` (T' target rows x S source columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    w = np.asarray(weights, dtype=float)
    if w.shape != (len(tgt_tokens), len(src_tokens)):
        raise ValueError(
            f"plot_attention: weights {w.shape} do not match {len(tgt_tokens)} target x "
            f"{len(src_tokens)} source tokens"
        )
    fig, ax = plt.subplots(figsize=(0.45 * len(src_tokens) + 2, 0.4 * len(tgt_tokens) + 1.5))
    ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(tgt_tokens)), tgt_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(p)
    return p
