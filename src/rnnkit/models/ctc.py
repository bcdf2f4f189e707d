"""CTC decoding: greedy (best path) and beam search through flashlight-text's decoder.

Given per-frame log-probabilities ``log p_t(v)`` over ``V`` units (blank at 0)::

    greedy:  pi_t = argmax_v log p_t(v);  output = B(pi)     B: merge repeats, drop blanks
    beam:    argmax_y  log sum_{pi : B(pi) = y} prod_t p_t(pi_t)   (approximately: beam search
             over prefixes, merging paths that collapse alike; flashlight's LexiconFreeDecoder)
    lexicon: the same, but only words of the lexicon may be spelled (flashlight's
             LexiconDecoder over a trie of spellings, each word ending in the space unit)

Beam search is flashlight-text's (the C++ decoder torchaudio's ``ctc_decoder`` wraps; pip
``flashlight-text``), with no language model (``ZeroLM``): it is imported when a beam
decoder is built, and its absence is a one-line error.

Shapes: ``B`` batch, ``T`` frames, ``V`` units.

Example::

    ids = greedy_decode(log_probs, lengths)                      # [[3, 1, 4], ...]
    beam = BeamDecoder(units.labels, beam_size=8, lexicon=["one", "two"])
    ids = beam(log_probs, lengths)
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["collapse", "greedy_decode", "BeamDecoder"]


def collapse(path: Sequence[int], blank: int = 0) -> list[int]:
    """``B(pi)``: merge runs of the same unit, then drop blanks: [0,3,3,0,3,1,1] -> [3,3,1]."""
    out, prev = [], None
    for u in path:
        u = int(u)
        if u != prev and u != blank:
            out.append(u)
        prev = u
    return out


def greedy_decode(log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0
                  ) -> list[list[int]]:
    """Best-path decoding of ``log_probs (B, T, V)``, each row cut at its length."""
    B, T, _ = log_probs.shape
    best = log_probs.argmax(-1).cpu()  # (B, T)
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    return [collapse(best[b, :lengths[b]].tolist(), blank) for b in range(B)]


class BeamDecoder:
    """CTC prefix beam search (flashlight-text), lexicon-free or constrained to a lexicon.

    Args:
        labels: unit names in index order, the blank first (``CharUnits.labels``).
        beam_size: hypotheses kept per frame.
        lexicon: words allowed (each spelled by its characters, then the space unit);
            None: any unit sequence.
        space: the unit that separates words (the lexicon's word end).
        beam_threshold: hypotheses scoring this far below the best are pruned.

    Call: ``decoder(log_probs (B, T, V), lengths (B,)) -> [[unit ids], ...]``.
    """

    def __init__(self, labels: Sequence[str], beam_size: int = 8,
                 lexicon: Sequence[str] | None = None, space: str = " ",
                 beam_threshold: float = 50.0):
        try:
            from flashlight.lib.text import decoder as fl
        except ImportError:
            raise ImportError("beam search needs flashlight-text: pip install flashlight-text "
                              "(or decode with beam_size 1, greedy)") from None
        if beam_size < 1:
            raise ValueError(f"beam_size={beam_size}; expected a positive integer")
        self.labels = list(labels)
        self.space = self.labels.index(space) if space in self.labels else -1
        self.lm = fl.ZeroLM()
        common = dict(beam_size=beam_size, beam_size_token=len(self.labels),
                      beam_threshold=beam_threshold, lm_weight=0.0, sil_score=0.0,
                      log_add=True, criterion_type=fl.CriterionType.CTC)
        sil = self.space if self.space >= 0 else 0
        self.words = None
        if lexicon is None:
            opts = fl.LexiconFreeDecoderOptions(**common)
            self.decoder = fl.LexiconFreeDecoder(opts, self.lm, sil, 0, [])
            return
        if self.space < 0:
            raise ValueError(f"lexicon decoding needs a word separator unit {space!r} in the "
                             "units")
        from flashlight.lib.text.dictionary import create_word_dict

        words = sorted(set(lexicon))
        index = {c: i for i, c in enumerate(self.labels)}
        for w in words:
            bad = [c for c in w if c not in index or index[c] in (0, self.space)]
            if bad or not w:
                raise ValueError(f"lexicon word {w!r}: character {bad[:1]} is not a unit; "
                                 "expected words spelled in the units, without spaces")
        word_dict = create_word_dict({w: [list(w)] for w in words} | {"<unk>": [["<unk>"]]})
        trie = fl.Trie(len(self.labels), sil)
        start = self.lm.start(False)
        for w in words:
            k = word_dict.get_index(w)
            _, score = self.lm.score(start, k)
            trie.insert([index[c] for c in w] + [self.space], k, score)
        trie.smear(fl.SmearingMode.MAX)
        opts = fl.LexiconDecoderOptions(**common, word_score=0.0, unk_score=float("-inf"))
        self.decoder = fl.LexiconDecoder(opts, trie, self.lm, sil, 0,
                                         word_dict.get_index("<unk>"), [], False)
        self.words, self.index = word_dict, index

    def __call__(self, log_probs: Tensor, lengths: Tensor | None = None) -> list[list[int]]:
        e = log_probs.detach().float().cpu().contiguous()  # (B, T, V): flashlight reads memory
        B, T, V = e.shape
        if V != len(self.labels):
            raise ValueError(f"log_probs has {V} units; the decoder was built for "
                             f"{len(self.labels)}")
        lengths = [T] * B if lengths is None else [int(n) for n in lengths]
        out = []
        for b in range(B):
            if lengths[b] == 0:
                out.append([])
                continue
            ptr = e.data_ptr() + b * e.stride(0) * e.element_size()
            best = self.decoder.decode(ptr, lengths[b], V)[0]
            if self.words is not None:  # whole words only (the tokens may end mid-word)
                text = " ".join(self.words.get_entry(k) for k in best.words if k >= 0)
                out.append([self.index[c] for c in text])
                continue
            ids = collapse(best.tokens, 0)
            while ids and ids[0] == self.space:  # flashlight brackets a hypothesis in silence
                ids.pop(0)
            while ids and ids[-1] == self.space:
                ids.pop()
            out.append(ids)
        return out

    @staticmethod
    def available() -> bool:
        """Whether flashlight-text imports here."""
        try:
            import flashlight.lib.text.decoder  # noqa: F401
        except ImportError:
            return False
        return True
