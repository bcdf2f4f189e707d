"""Streaming predictors: a checkpoint loaded once, its state kept across ``step()`` calls.

One class per pipeline, all with ``task``, ``reset()`` and ``step(...)``; each pipeline's
:attr:`~rnnkit.train.task.TaskSpec.predictor` loads its checkpoint into one of them, and
:func:`rnnkit.serve.load_predictor` picks it by the checkpoint's task.  Nothing here imports
a pipeline:

- :class:`LMPredictor` (``lm``): ``feed(text)`` runs text through the network, carrying the
  state; each ``step()`` samples the next token from the last logits, feeds it back and
  returns it, so ``feed(prompt)`` + ``step()`` x n is :func:`rnnkit.generate.generate`,
  token for token, at O(1) work per token.
- :class:`AnomalyPredictor` (``anomaly``): ``step(value)`` is the anomaly score of the next
  value of the stream (:class:`rnnkit.anomaly.streaming.StreamingScorer`: the recurrent state
  and the last predictions are the carried state).
- :class:`ForecastPredictor` (``forecast``, in :mod:`rnnkit.tasks.predictors_forecast`):
  ``step(timestamp, values)`` appends one row and, once ``input_length`` rows are in, returns
  the forecast of the next ``horizon`` steps; the window of the last rows is the carried state
  (the model was trained on windows, so the window, not an ever-running recurrent state, is
  what a forecast must see).  Its interval is
  calibrated as the recipe's ``data.interval_calibration`` says, as ``forecast predict`` does
  (:class:`~rnnkit.tasks.forecast_intervals.IntervalCalibrator`; rolling needs a longer
  history, and keeps that much).
- :class:`AudioPredictor` (``audio``): clips are classified whole (``classify``).
- :class:`ASRPredictor` (``asr``): a WAV file's transcript (``transcribe_wav``), or, for a
  unidirectional checkpoint, samples streamed in through ``step(samples)`` (the partial
  transcript; the network's state and the CTC path are the carried state).
- :class:`TextPredictor` (``classify``, ``tag``, ``translate``): texts through each pipeline's
  :attr:`~rnnkit.train.task.TaskSpec.predict`.

Every predictor also has a stateless ``predict(payload)``/task call used by the HTTP server.

Example::

    p = load_predictor("runs/shakespeare_char/best")
    p.feed("ROMEO:")
    text = "".join(p.step(temperature=0.8, top_k=40) for _ in range(200))
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.tasks.predictors_forecast import ForecastPredictor

__all__ = ["LMPredictor", "AnomalyPredictor", "ForecastPredictor", "AudioPredictor",
           "ASRPredictor", "TextPredictor", "text_predictor", "maybe_int8"]


class LMPredictor:
    """Text generation and scoring with a language-model checkpoint (see the module docstring)."""

    task = "lm"
    api = "generate"  # the HTTP routes it serves (rnnkit.serve.app): /generate, /predict

    def __init__(
        self, model: torch.nn.Module, vocab: Any, config: Any = None, *, seed: int | None = None
    ):
        self.model, self.vocab, self.config = model.eval(), vocab, config
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(seed)
        self.reset()

    def facts(self) -> dict[str, Any]:
        """What ``GET /info`` says of the model."""
        return {"vocab_size": len(self.vocab), "level": self.vocab.level}

    def reset(self) -> None:
        """Forget the stream: no state, no pending logits."""
        self.state: Any = None
        self.logits: torch.Tensor | None = None  # (V,) next-token logits

    def feed_ids(self, ids: list[int]) -> None:
        """Run token ids through the network, carrying the state (in chunks: bounded memory).

        Raises:
            ValueError: an id that is not an integer in ``[0, vocab_size)`` (a negative one
                would index from the end of the embedding table in some runtimes).
        """
        from rnnkit.generate import feed_prompt

        V = len(self.vocab)
        for i, t in enumerate(ids):
            if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) \
                    or not 0 <= t < V:
                raise ValueError(f"ids[{i}]: {t!r} is not a token id; expected an integer in "
                                 f"[0, {V})")
        logits, self.state = feed_prompt(self.model, ids, self.state)
        self.logits = logits.float()

    def feed(self, text: str) -> None:
        """Run ``text`` through the network (an empty text starts a new line)."""
        from rnnkit.generate import encode_prompt

        self.feed_ids(encode_prompt(self.vocab, text))

    def step(
        self, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
    ) -> str:
        """Sample the next token, feed it back, and return it as text."""
        from rnnkit.data import EOS
        from rnnkit.generate import sample_next

        if self.logits is None:
            self.feed("")
        nxt = sample_next(self.logits, temperature=temperature, top_k=top_k, top_p=top_p,
                          generator=self.generator)
        self.feed_ids([nxt])
        tok = self.vocab.itos[nxt]
        if (self.vocab.level or "char") == "word":
            return "\n" if tok == EOS else " " + tok
        return tok

    def generate(
        self,
        prompt: str,
        length: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> str:
        """``length`` tokens continuing ``prompt`` (a fresh stream; seeded like
        ``rnnkit generate``)."""
        from rnnkit.generate import _check_args

        _check_args(length, temperature, top_k, top_p)
        self.reset()
        if seed is not None:
            self.generator.manual_seed(seed)
        else:
            self.generator.seed()
        self.feed(prompt)
        return "".join(
            self.step(temperature=temperature, top_k=top_k, top_p=top_p) for _ in range(length)
        )

    @torch.no_grad()
    def score(self, text: str) -> dict[str, float]:
        """Mean next-token cross-entropy of ``text`` (nats), its perplexity and bits per token.

        At word level an unknown word is read as ``<unk>`` (the convention PTB's and
        WikiText-2's perplexities use) and counted in ``"unknown_words"``, so a score over
        text the model cannot spell is never taken for one over the text itself.
        """
        from rnnkit.generate import encode_prompt

        ids = encode_prompt(self.vocab, text, unknown="unk")
        unknown = sum(w not in self.vocab for w in text.split()) if self.vocab.level == "word" \
            else 0
        if len(ids) < 2:
            raise ValueError(f"text: needs at least 2 tokens to score, got {len(ids)}")
        x = torch.tensor(ids, dtype=torch.long).unsqueeze(1)  # (T, 1)
        logits, _ = self.model(x[:-1])  # (T-1, 1, V)
        loss = float(F.cross_entropy(logits[:, 0].float(), x[1:, 0]))
        return {
            "tokens": len(ids),
            "loss": loss,
            "ppl": math.exp(min(loss, 700.0)),
            "bits": loss / math.log(2),
            "unknown_words": unknown,
        }


class AnomalyPredictor:
    """Anomaly scores of a stream (``step``) or of a whole series (``score``)."""

    task = "anomaly"
    api = "score"  # POST /score

    def __init__(self, detector: Any):
        from rnnkit.anomaly.streaming import StreamingScorer

        self.detector = detector
        self._make = lambda: StreamingScorer(detector)
        self.reset()

    def facts(self) -> dict[str, Any]:
        """What ``GET /info`` says of the model."""
        c = self.detector.config
        # the training series' median step: the server scores values, not timestamps, so the
        # client is the one to send a series that steps so (rnnkit anomaly score checks it)
        return {"kind": c.kind, "horizon": c.horizon, "window": c.window,
                "step": self.detector.step}

    def reset(self) -> None:
        self.scorer = self._make()

    def step(self, value: float) -> float:
        """Score of the next value of the stream (0 until the first full error vector)."""
        return float(self.scorer.update(value))

    def score(self, values: list[float]) -> list[float]:
        """Scores of a new series, row by row from a fresh stream (equal to the batch path)."""
        s = self._make()
        return [float(s.update(v)) for v in values]


class AudioPredictor:
    """Clip classification from a waveform (resampled to the checkpoint's rate) or features."""

    task = "audio"
    api = "audio"  # POST /predict with samples

    def __init__(self, model: torch.nn.Module, classes: list[str], feats: dict[str, Any]):
        self.model, self.classes, self.feats = model.eval(), classes, feats

    def facts(self) -> dict[str, Any]:
        """What ``GET /info`` says of the model."""
        return {"classes": self.classes, "sample_rate": self.feats["features"].sample_rate}

    def reset(self) -> None:
        """Nothing is carried between clips."""

    @torch.no_grad()
    def classify(self, waveform: list[float], sample_rate: int, top_k: int = 1) -> dict[str, Any]:
        from rnnkit.data.audio import compute_features, normalise_features

        fcfg = self.feats["features"]
        y64 = np.asarray(waveform, dtype=np.float64)
        # inf, NaN, or inf in float32
        bad = np.flatnonzero(~(np.abs(y64) <= np.finfo(np.float32).max))
        if bad.size:
            raise ValueError(f"audio[{bad[0]}]: {y64[bad[0]]:g} is not a finite float32 sample "
                             "(samples are usually in [-1, 1])")
        y = y64.astype(np.float32)
        if sample_rate != fcfg.sample_rate:
            import librosa

            y = librosa.resample(y, orig_sr=sample_rate, target_sr=fcfg.sample_rate)
        if len(y) < fcfg.n_fft:
            raise ValueError(f"audio: {len(y)} samples at {fcfg.sample_rate} Hz; expected at least "
                             f"{fcfg.n_fft} (one analysis frame)")
        # (1, T, F)
        x = torch.from_numpy(normalise_features(compute_features(y, fcfg), self.feats))[None]
        p = torch.softmax(self.model(x, torch.tensor([x.shape[1]])).float(), -1)[0]  # (K,)
        probs, idx = p.topk(min(top_k, len(self.classes)))
        top = [[self.classes[int(i)], float(v)] for v, i in zip(probs, idx)]
        return {"label": top[0][0], "prob": top[0][1], "top": top}


class ASRPredictor:
    """Speech to text: a WAV body transcribed whole, or samples streamed in (module docstring).

    Args:
        model: the CTC model (evaluation mode).
        sample_rate: the rate the model was trained at (audio is resampled to it).
        transcribe: ``transcribe(samples (N,) float32, beam_size) -> text``.
        streamer: ``streamer() -> an object with push(samples) -> text and finish() -> text``,
            or None when the model cannot stream (bidirectional).
        facts: what ``GET /info`` adds (units, lexicon, ...).
    """

    task = "asr"
    api = "transcribe"  # POST /transcribe with a WAV body

    def __init__(self, model: torch.nn.Module, sample_rate: int, transcribe, streamer=None,
                 facts: dict[str, Any] | None = None):
        self.model, self.sample_rate = model.eval(), sample_rate
        self._transcribe, self._streamer = transcribe, streamer
        self._facts = {"sample_rate": sample_rate, "streaming": streamer is not None,
                       **(facts or {})}
        self.reset()

    def facts(self) -> dict[str, Any]:
        return dict(self._facts)

    def reset(self) -> None:
        """Forget the streamed utterance."""
        self.stream = None

    def step(self, samples) -> str:
        """Feed samples at ``sample_rate`` (unidirectional models); the transcript so far."""
        if self._streamer is None:
            raise ValueError("this checkpoint is bidirectional: it transcribes whole "
                             "utterances only (transcribe_wav)")
        if self.stream is None:
            self.stream = self._streamer()
        return self.stream.push(samples)

    def finish(self) -> str:
        """End the streamed utterance; its whole transcript."""
        text = self.stream.finish() if self.stream is not None else ""
        self.reset()
        return text

    @torch.no_grad()
    def transcribe_wav(self, data: bytes, beam_size: int = 1) -> dict[str, Any]:
        """The transcript of a WAV (or FLAC, OGG) file's bytes; one-line errors for bad audio."""
        import io

        import soundfile as sf

        try:
            y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # (N, C)
        except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError
            raise ValueError(f"body: cannot read audio ({' '.join(str(e).split())}); expected "
                             "a WAV, FLAC or OGG file") from None
        if y.shape[0] == 0 or not np.isfinite(y).all():
            raise ValueError("body: the audio has no samples or non-finite ones")
        y = y.mean(axis=1)
        if sr != self.sample_rate:
            import librosa

            y = librosa.resample(y, orig_sr=sr, target_sr=self.sample_rate).astype(np.float32)
        text = self._transcribe(self.model, y, beam_size)
        return {"text": text, "seconds": round(len(y) / self.sample_rate, 3)}


class TextPredictor:
    """Text classification, tagging and translation through each pipeline's
    :attr:`~rnnkit.train.task.TaskSpec.predict`: one result dict per text.

    Those functions take a checkpoint path and load it per call; a pipeline that exposes a
    load-once predictor can set its own :attr:`~rnnkit.train.task.TaskSpec.predictor`.
    """

    api = "texts"  # POST /predict with texts

    def __init__(self, checkpoint: Path, task: str):
        from rnnkit.train.task import get_task_spec

        self.fn = get_task_spec(task).predict
        if self.fn is None:
            raise ValueError(f"{checkpoint}: the {task!r} pipeline has no predict function")
        self.checkpoint, self.task = checkpoint, task
        self.takes = set(inspect.signature(self.fn).parameters)

    def facts(self) -> dict[str, Any]:
        """What ``GET /info`` says of the model (nothing beyond its task)."""
        return {}

    def reset(self) -> None:
        """Nothing is carried between texts."""

    #: the options :meth:`predict` knows, with their defaults; each pipeline takes some of them
    OPTIONS = {"top_k": 1, "beam_size": 5, "max_len": 100}

    def options(self) -> dict[str, Any]:
        """The options this checkpoint's pipeline takes, with their defaults (e.g. classify:
        ``top_k``; translate: ``beam_size`` and ``max_len``; tag: none)."""
        return {k: v for k, v in self.OPTIONS.items() if k in self.takes}

    def predict(self, texts: list[str], **options: Any) -> list[dict]:
        """One result dict per text; ``options`` must be among :meth:`options` (an option the
        pipeline does not take is an error, as ``rnnkit predict`` makes it, not ignored)."""
        takes = self.options()
        for k in options:
            if k not in takes:
                have = ", ".join(takes) or "no options"
                raise ValueError(f"{k}: does not apply to {self.task} checkpoints (they take "
                                 f"{have})")
        return self.fn(str(self.checkpoint), list(texts), **{**takes, **options})


# --------------------------------------------------------------------------- loading


def text_predictor(d: Path, int8: bool) -> TextPredictor:
    from rnnkit.train.checkpoint import read_config

    if int8:
        raise ValueError(
            "--int8: not available for text classification/tagging/translation checkpoints yet"
        )
    return TextPredictor(d, read_config(d)["task"])


def maybe_int8(model: torch.nn.Module, int8: bool) -> torch.nn.Module:
    """``model`` with its recurrent and linear layers quantised dynamically if ``int8``."""
    if not int8:
        return model
    from rnnkit.compress.quantize import quantize_dynamic

    return quantize_dynamic(model)[0]
