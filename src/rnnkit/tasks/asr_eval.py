"""Scoring and decoding for the asr pipeline: WER, CER and sentence accuracy; batches of frames.

Over a split of ``N`` utterances with references ``r_i`` and hypotheses ``h_i``::

    WER = sum_i edit_words(h_i, r_i) / sum_i words(r_i)          (torchmetrics, corpus level)
    CER = sum_i edit_chars(h_i, r_i) / sum_i chars(r_i)
    sentence accuracy = (1/N) sum_i [h_i == r_i]

Decoding is greedy (``beam_size=1``) or flashlight-text's beam search, optionally
constrained to a lexicon (:mod:`rnnkit.models.ctc`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.data.audio import AudioDataError
from rnnkit.data.speech import CharUnits, normalise_text
from rnnkit.models.ctc import BeamDecoder, greedy_decode

__all__ = ["error_rates", "collate_utterances", "make_decoder", "decode_split",
           "ctc_frames_needed", "check_ctc_feasible"]


def ctc_frames_needed(ids) -> int:
    """The fewest output frames a CTC alignment of ``ids`` takes: one per unit, plus a blank
    between each pair of equal adjacent units (``"ll"`` needs ``l, blank, l``)."""
    ids = [int(i) for i in ids]
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


def _infeasible(origin: str, ids, have: int, frames: int) -> AudioDataError:
    need = ctc_frames_needed(ids)
    return AudioDataError(
        f"{origin}: transcript too long for its audio under CTC: it needs {need} output frames "
        f"({len(ids)} characters + {need - len(ids)} blanks between repeated ones) but the "
        f"audio's {frames} feature frames give the model {have}; expected a longer clip or a "
        "shorter transcript")


def check_ctc_feasible(items: list[tuple], frame_lengths) -> None:
    """An :class:`AudioDataError` naming the first of ``items`` (``(frames, ids, text,
    origin)``) whose transcript cannot be aligned: fewer model output frames
    (``frame_lengths(T)``, a (N,) tensor of input frames -> output frames) than
    :func:`ctc_frames_needed`. CTC's loss is infinite there, and zeroing it would skip the
    utterance silently."""
    if not items:
        return
    frames = torch.tensor([it[0].shape[0] for it in items])
    have = frame_lengths(frames).tolist()
    for it, T, n in zip(items, frames.tolist(), have):
        if ctc_frames_needed(it[1]) > n:
            raise _infeasible(it[3], it[1], int(n), T)


def error_rates(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """``{"wer", "cer", "sentence_accuracy"}`` of hypotheses against references."""
    from torchmetrics.functional.text import char_error_rate, word_error_rate

    if len(hyps) != len(refs) or not refs:
        raise ValueError(f"error_rates: {len(hyps)} hypotheses for {len(refs)} references")
    return {"wer": float(word_error_rate(hyps, refs)), "cer": float(char_error_rate(hyps, refs)),
            "sentence_accuracy": sum(h == r for h, r in zip(hyps, refs)) / len(refs)}


def collate_utterances(items: list[tuple]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``[(frames (T_i, F), ids, ...)]`` -> ``x (B, T, F)``, ``lengths (B,)``, ``targets
    (sum L_i,)`` concatenated, ``target_lengths (B,)``."""
    frames = [torch.from_numpy(np.ascontiguousarray(it[0])) for it in items]
    x = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)  # (B, T, F)
    lengths = torch.tensor([f.shape[0] for f in frames])
    targets = torch.tensor([i for it in items for i in it[1]], dtype=torch.long)
    return x, lengths, targets, torch.tensor([len(it[1]) for it in items])


def make_decoder(units: CharUnits, beam_size: int = 1, lexicon: list[str] | None = None):
    """``decode(log_probs (B, T, V), lengths) -> [text]``: greedy at beam 1 without a
    lexicon, else flashlight-text's beam search."""
    if beam_size < 1:
        raise ValueError(f"--beam-size {beam_size}: expected a positive integer")
    if beam_size == 1 and not lexicon:
        return lambda lp, n: [normalise_text(units.decode(ids)) for ids in greedy_decode(lp, n)]
    beam = BeamDecoder(units.labels, beam_size=beam_size, lexicon=lexicon)
    return lambda lp, n: [normalise_text(units.decode(ids)) for ids in beam(lp, n)]


@torch.no_grad()
def decode_split(model: nn.Module, items: list[tuple], decode, batch_size: int = 64
                 ) -> dict[str, Any]:
    """Mean CTC loss per utterance (nats), hypotheses and error rates over ``items``
    (``(frames, ids, text, origin)``), batched by length."""
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size!r}: expected a positive integer")
    if not items:
        raise ValueError("decode_split: no utterances to decode")
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    ctc = nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    order = sorted(range(len(items)), key=lambda i: items[i][0].shape[0])
    hyps: list[str] = [""] * len(items)
    loss = 0.0
    for k in range(0, len(order), batch_size):
        chunk = order[k:k + batch_size]
        x, lengths, y, ylen = collate_utterances([items[i] for i in chunk])
        lp, olen = model(x.to(dev), lengths)  # (B, T', V)
        for i, n in zip(chunk, olen.tolist()):  # an infeasible one's loss would be zeroed
            if ctc_frames_needed(items[i][1]) > n:
                model.train(was)
                raise _infeasible(items[i][3], items[i][1], int(n), items[i][0].shape[0])
        loss += float(ctc(lp.transpose(0, 1), y, olen, ylen))  # log_probs as (T', B, V)
        for i, h in zip(chunk, decode(lp.cpu(), olen)):
            hyps[i] = h
    model.train(was)
    refs = [it[2] for it in items]
    return {"loss": loss / len(items), **error_rates(hyps, refs), "hyps": hyps}
