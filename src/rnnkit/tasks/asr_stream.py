"""Transcribing while the audio streams in: samples -> frames -> conv + ``rnn.step`` -> text.

A unidirectional asr checkpoint (``model.bidirectional: false``, causal convolutions) is run
incrementally: :class:`~rnnkit.data.speech.StreamingFeatures` turns each chunk of samples
into the log-mel frames it completes, they are normalised with the checkpoint's statistics,
:class:`~rnnkit.models.asr.CTCStream` advances the network by those frames, and the greedy
CTC path is extended and collapsed as it grows::

    s = StreamingTranscriber(model, units, info)
    for chunk in microphone:            # float32 samples at the checkpoint's rate
        partial = s.push(chunk)         # the transcript so far
    text = s.finish()                   # = the greedy transcript of the whole utterance

The result equals greedy decoding of the whole utterance (the tests check it); beam search
needs every frame, so it is not offered while streaming.
"""
from __future__ import annotations

import numpy as np
import torch

from rnnkit.data.audio import normalise_features
from rnnkit.data.speech import CharUnits, StreamingFeatures, normalise_text
from rnnkit.models.asr import CTCModel, CTCStream

__all__ = ["StreamingTranscriber"]


class StreamingTranscriber:
    """Greedy CTC transcription of one utterance, chunk by chunk (module docstring).

    Args:
        model: a unidirectional :class:`CTCModel` (evaluation mode).
        units: the checkpoint's units.
        info: ``units.json``'s dict: ``features`` (a FeatureConfig) and the normalisation.
    """

    def __init__(self, model: CTCModel, units: CharUnits, info: dict):
        if info.get("normalize") != "global":
            raise ValueError("streaming needs data.normalize: global (per-utterance statistics "
                             "need the whole utterance)")
        self.stream = CTCStream(model)  # raises for a bidirectional model
        self.units, self.info = units, info
        self.reset()

    def reset(self) -> None:
        """Start a new utterance."""
        self.features = StreamingFeatures(self.info["features"])
        self.stream.reset()
        self.ids: list[int] = []
        self.prev = 0  # the last frame's best unit (0: blank)

    def _advance(self, frames: np.ndarray) -> str:
        if len(frames):
            x = torch.from_numpy(normalise_features(frames, self.info).astype(np.float32))
            for u in self.stream.push(x).argmax(-1).tolist():  # (m,) best unit per frame
                if u != self.prev and u != 0:
                    self.ids.append(u)
                self.prev = u
        return normalise_text(self.units.decode(self.ids))

    def push(self, samples) -> str:
        """Feed float32 samples (at the checkpoint's rate); returns the transcript so far."""
        return self._advance(self.features.push(np.asarray(samples, np.float32)))

    def finish(self) -> str:
        """The last frames; returns the whole transcript."""
        return self._advance(self.features.finish())
