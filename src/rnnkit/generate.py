"""Text generation from a language model: greedy, temperature, top-k and top-p sampling.

At each step the next token is drawn from the filtered, tempered distribution::

    p_i  = softmax((z - max z) / tau)_i         tau: temperature > 0 (tau = 0 means greedy argmax);
                                                z - max z: no overflow at any tau (in float64)
    top-k: keep the k largest p_i
    top-p: keep the smallest set of largest p_i whose sum reaches p (nucleus sampling,
           Holtzman et al. 2020); the most likely token is always kept
    x_t  ~ renormalised p                        (torch.Generator seeded by ``seed``)

The prompt is fed through the model first, ``PROMPT_CHUNK`` tokens at a time with the
state carried (the same result as one call, at memory that does not grow with the
prompt); its final state and logits start the loop, and every generated token is fed back
with the carried state (one step per token), so generation costs O(length) and text can be
printed as it is produced.

Example::

    model, vocab, cfg = load_lm_checkpoint("runs/demo/best")
    for piece in generate(model, vocab, "ROMEO:", 200, temperature=0.8, top_k=40, seed=0):
        print(piece, end="", flush=True)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data import EOS, OutOfVocabularyError, Vocab
from rnnkit.data.text import tokenize  # (rnnkit.data.tokenize, once imported, is the module)

#: special tokens of rnnkit's vocabularies, never typed in a word-level prompt (``<unk>`` may
#: be: PTB and WikiText-2 write it in their text, so it is a word of their vocabularies)
_SPECIALS = frozenset({EOS, "<pad>", "<bos>"})

__all__ = [
    "filter_logits",
    "sample_next",
    "encode_prompt",
    "feed_prompt",
    "generate",
    "PROMPT_CHUNK",
    "check_seed",
]

#: prompt tokens per model call: a 10,000-character prompt in one call held ~100 MB of
#: activations (2x384 LSTM), which the allocator then kept; in chunks of 256, ~3 MB
PROMPT_CHUNK = 256


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set logits outside the top-k / nucleus (top-p) set to -inf.  ``logits``: (V,)."""
    out = logits.clone()
    if top_k is not None and 0 < top_k < out.numel():
        kth = torch.topk(out, top_k).values[-1]
        out[out < kth] = float("-inf")
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(out, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass of the strictly more likely tokens
        drop = before >= top_p
        drop[0] = False
        out[order[drop]] = float("-inf")
    return out


def sample_next(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> int:
    """One token id from ``logits`` (V,) (see the module docstring).

    Stable at every positive temperature: the largest logit is subtracted first, so
    ``(z - max z) / tau`` lies in ``[-inf, 0]`` with the top token(s) at 0, and the division
    runs in float64 (a float32 ``tau`` of 1e-45 is denormal, 1e-46 is 0). As ``tau -> 0``
    the distribution becomes one-hot on the argmax (uniform over tied tops).

    Raises:
        ValueError: a negative or non-finite ``temperature``; logits with no finite maximum.
    """
    _check_temperature(temperature)
    if temperature == 0:
        return int(torch.argmax(logits))
    z = logits.double()
    top = z.max()
    if not torch.isfinite(top):
        raise ValueError(
            f"logits: the largest is {float(top)}; expected finite values (a diverged model?)"
        )
    z = filter_logits((z - top) / temperature, top_k, top_p)  # (V,) in [-inf, 0]
    probs = torch.softmax(z, dim=-1).float()  # float32 as before: seeded draws are unchanged
    return int(torch.multinomial(probs, 1, generator=generator))


def _check_temperature(temperature: float) -> None:
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"--temperature {temperature}: expected a finite value >= 0 (0 = greedy)")


#: the seeds a torch.Generator takes (a negative one wraps around modulo 2**64)
SEED_RANGE = (-(2**63), 2**64 - 1)


def check_seed(seed: int | None, flag: str = "--seed") -> None:
    """A seed the sampling generator can take, or a one-line error naming ``flag``."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{flag} {seed!r}: expected an integer")
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ValueError(f"{flag} {seed}: expected an integer from -2**63 to 2**64 - 1")


def _check_args(length: int, temperature: float, top_k: int | None, top_p: float | None,
                seed: int | None = None) -> None:
    if length < 0:
        raise ValueError(f"--length {length}: expected a non-negative number of tokens")
    _check_temperature(temperature)
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top-k {top_k}: expected a positive integer")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"--top-p {top_p}: expected a probability in (0, 1]")
    check_seed(seed)


def encode_prompt(vocab: Vocab, prompt: str, *, unknown: str = "error") -> list[int]:
    """Token ids of ``prompt`` at the vocabulary's level.

    Char level: every character, each of which must be in the vocabulary. Word level: the
    words of each line, a line break giving ``<eos>`` (as in training); every word must be in
    the vocabulary (no silent ``<unk>``) unless ``unknown="unk"`` (scoring text, where unknown
    words are read as ``<unk>``, the word-level convention, and counted by the caller), and
    ``<eos>``/``<pad>``/``<bos>`` cannot be typed: they would be read as the special token,
    not as text. ``<unk>`` can: PTB and WikiText-2 write it in their text.

    An empty prompt starts a new line: the model is fed ``"\n"`` (char level) or ``<eos>``
    (word level), and is an error when the vocabulary has no such token.

    Raises:
        ValueError: a character or word the model has never seen, or a special token typed
            in the prompt (naming them), or an empty prompt without a start token.
    """
    if unknown not in ("error", "unk"):
        raise ValueError(f"unknown={unknown!r}: expected 'error' or 'unk'")
    level = vocab.level or "char"
    if not prompt:
        start = "\n" if level == "char" else EOS
        if start not in vocab:
            raise ValueError(
                f"--prompt: empty, and the checkpoint's vocabulary has no {start!r} to start a "
                f"new line from; expected a non-empty prompt"
            )
        return [vocab.stoi[start]]
    if level == "char":
        tokens = list(prompt)
    else:
        tokens = tokenize(prompt, "word")[:-1] or [EOS]
        words = prompt.split()
        specials = sorted({w for w in words if w in _SPECIALS})
        if specials:
            raise ValueError(
                f"--prompt: {', '.join(map(repr, specials))} is a special token, not a word; "
                "expected plain text (a line break in the prompt ends a sentence)"
            )
        oov = [w for w in dict.fromkeys(words) if w not in vocab]
        if oov and (unknown == "error" or vocab.unk is None):
            shown = ", ".join(map(repr, oov[:10])) + (
                f" and {len(oov) - 10} more" if len(oov) > 10 else "")
            raise ValueError(
                f"--prompt: {shown} {'is' if len(oov) == 1 else 'are'} not in the "
                f"checkpoint's vocabulary ({len(vocab)} tokens); expected words it was "
                "trained on" + (f" (they would be read as {vocab.unk})" if vocab.unk else "")
            )
    try:
        return vocab.encode(tokens)
    except OutOfVocabularyError as e:
        raise ValueError(
            f"--prompt: {e.token!r} at position {e.position} is not in the checkpoint's vocabulary "
            f"({len(vocab)} {'characters' if level == 'char' else 'tokens'})"
        ) from None


@torch.no_grad()
def feed_prompt(model: nn.Module, ids: list[int], state: Any = None, *,
                device: torch.device | str = "cpu") -> tuple[Tensor, Any]:
    """Run ``ids`` (at least one) through ``model`` in chunks of :data:`PROMPT_CHUNK`,
    carrying the state; returns the last token's logits (V,) and the final state."""
    for i in range(0, len(ids), PROMPT_CHUNK):
        x = torch.tensor(
            ids[i:i + PROMPT_CHUNK], dtype=torch.long, device=device
        ).unsqueeze(1)  # (t, 1)
        logits, state = model(x, state)  # (t, 1, V)
    return logits[-1, 0], state


@torch.no_grad()
def generate(
    model: nn.Module,
    vocab: Vocab,
    prompt: str,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> Iterator[str]:
    """Yield ``length`` generated tokens as text pieces (words get a leading space).

    Args:
        model: a language model mapping ``(T, B)`` ids and a state to ``(logits, state)``.
        vocab: its vocabulary.
        prompt: text to continue (tokenized at the vocabulary's level).
        length: number of tokens to generate.
        temperature: tau; 0 means greedy decoding.
        top_k, top_p: sampling filters (None: off).
        seed: seed of the sampling generator (None: nondeterministic).
    """
    _check_args(length, temperature, top_k, top_p, seed)
    ids = encode_prompt(vocab, prompt)
    model.eval()
    dev = next(model.parameters()).device
    gen = torch.Generator()
    if seed is not None:
        gen.manual_seed(seed)
    else:
        gen.seed()
    last, state = feed_prompt(model, ids, device=dev)
    last = last.cpu()
    word = (vocab.level or "char") == "word"
    for _ in range(length):
        nxt = sample_next(last, temperature=temperature, top_k=top_k, top_p=top_p, generator=gen)
        tok = vocab.itos[nxt]
        yield ("\n" if tok == EOS else " " + tok) if word else tok
        logits, state = model(torch.tensor([[nxt]], device=dev), state)  # (1, 1, V)
        last = logits[-1, 0].cpu()
