"""Connected-digit utterances made from FSDD's isolated digits, deterministic from a seed.

FSDD (Free Spoken Digit Dataset) has 6 speakers x 10 digits x 50 recordings at 8 kHz, named
``{digit}_{speaker}_{index}.wav``. An utterance is 2-7 digits of one speaker, each a
recording drawn from a pool, joined with short silences::

    n        ~ U{min_digits..max_digits}, speaker ~ U(speakers), d_i ~ U{0..9}
    r_i      = a recording of (speaker, d_i) from the pool, scaled to RMS 0.05 x 10^(g_i/20),
               g_i ~ U(-3, 3) dB                                 (per-digit level jitter)
    r_i      = speed(r_i, a),  a ~ U(speed)                      optional, one a per utterance:
                                                                  r(t) -> r(a t), N/a samples
    y        = [s_0, r_1, s_1, ..., r_n, s_n]                     s_0, s_n ~ U(0.05, 0.2) s of
                                                                  silence, s_i ~ U(0.05, 0.3) s
    y        = 10^(G/20) y + e,   G ~ U(-6, 6) dB,   e ~ N(0, sigma^2),  SNR ~ U(20, 40) dB
    text     = "three one four"                                   digit words, one space

Speed perturbation (Ko et al. 2015, "Audio augmentation for speech recognition") plays a
recording ``a`` times faster: tempo, pitch and formants all scale by ``a``, which mimics a
shorter or longer vocal tract, so five training speakers sound like many. It resamples
with soxr (librosa's default resampler) from ``sample_rate`` to ``sample_rate / a``.

Everything is drawn from ``numpy.random.default_rng(seed)``, so one seed always gives the
same audio and transcripts (given the same recordings). Pools (:func:`split_pools`):

- ``standard``: FSDD's split; test recordings are index 0-4, validation 5-9, training
  10-49, every speaker in each;
- ``loso:SPEAKER`` (leave one speaker out): test is all of SPEAKER's recordings, validation
  the other speakers' index 0-4, training their 5-49.

Example::

    pools = split_pools(fsdd_recordings("fsdd/recordings"), "standard")
    utts = make_utterances(pools["test"], 100, seed=1)    # [Utterance(audio, text, ...)]
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.audio import AudioDataError, load_audio

__all__ = ["DIGIT_WORDS", "FSDD_SPEAKERS", "Recording", "Utterance", "fsdd_recordings",
           "split_pools", "make_utterances", "split_names", "speed_perturb"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
_NAME = re.compile(r"(\d)_([A-Za-z]+)_(\d+)")
_RMS = 0.05


@dataclass(frozen=True)
class Recording:
    """One isolated-digit recording."""

    digit: int
    speaker: str
    index: int
    path: Path


@dataclass
class Utterance:
    """A connected-digit utterance: float32 samples, transcript, the digits and recordings used."""

    audio: np.ndarray
    text: str
    digits: tuple[int, ...]
    speaker: str
    sources: tuple[str, ...]
    speed: float = 1.0


def fsdd_recordings(folder: str | Path) -> list[Recording]:
    """Every ``{digit}_{speaker}_{index}.wav`` of ``folder``, sorted (the order seeds rely on)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioDataError(f"{folder}: no such directory; expected FSDD's recordings/ folder")
    out = []
    for p in sorted(folder.glob("*.wav")):
        m = _NAME.fullmatch(p.stem)
        if m is None:
            raise AudioDataError(f"{p}: expected a name {{digit}}_{{speaker}}_{{index}}.wav")
        out.append(Recording(int(m[1]), m[2], int(m[3]), p))
    if not out:
        raise AudioDataError(f"{folder}: no .wav files; expected FSDD's recordings")
    return out


def split_names(recordings: list[Recording]) -> list[str]:
    """The splits :func:`split_pools` accepts for these recordings."""
    return ["standard", *(f"loso:{s}" for s in sorted({r.speaker for r in recordings}))]


def split_pools(recordings: list[Recording], split: str) -> dict[str, list[Recording]]:
    """``{"train", "valid", "test"}`` recording pools of ``split`` (module docstring)."""
    if split == "standard":
        parts = {"train": [r for r in recordings if r.index >= 10],
                 "valid": [r for r in recordings if 5 <= r.index < 10],
                 "test": [r for r in recordings if r.index < 5]}
    elif split.startswith("loso:"):
        held = split[5:]
        if held not in {r.speaker for r in recordings}:
            raise AudioDataError(f"data.split {split!r}: unknown speaker; expected one of "
                                 f"{split_names(recordings)}")
        rest = [r for r in recordings if r.speaker != held]
        parts = {"train": [r for r in rest if r.index >= 5],
                 "valid": [r for r in rest if r.index < 5],
                 "test": [r for r in recordings if r.speaker == held]}
    else:
        raise AudioDataError(f"data.split {split!r}: expected one of {split_names(recordings)}")
    for name, pool in parts.items():
        if not pool:
            raise AudioDataError(f"data.split {split!r}: no recordings for {name}")
    return parts


def speed_perturb(y: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """``y`` (N,) played ``factor`` times faster: ``round(N / factor)`` samples, pitch and
    formants times ``factor`` (band-limited resampling, soxr's high quality)."""
    import librosa

    if factor == 1.0:
        return y
    return librosa.resample(np.asarray(y, np.float32), orig_sr=sample_rate,
                            target_sr=sample_rate / factor, res_type="soxr_hq")


def make_utterances(pool: list[Recording], n: int, seed: int, *, min_digits: int = 2,
                    max_digits: int = 7, sample_rate: int = 8000, augment: bool = True,
                    speed: tuple[float, float] | None = None,
                    loaded: dict[Path, np.ndarray] | None = None) -> list[Utterance]:
    """``n`` utterances from ``pool`` (module docstring); ``augment=False``: no gain or noise;
    ``speed=(lo, hi)``: each utterance's recordings sped up by one factor ~ U(lo, hi);
    ``loaded``: a dict that keeps the recordings read, for the next call."""
    if not 1 <= min_digits <= max_digits:
        raise AudioDataError(f"data.min_digits/max_digits: expected 1 <= min <= max, got "
                             f"{min_digits}, {max_digits}")
    if speed is not None and not 0.5 <= speed[0] <= speed[1] <= 2.0:
        raise AudioDataError(f"data.speed_perturb: expected [lo, hi] with 0.5 <= lo <= hi <= 2, "
                             f"got {list(speed)}")
    rng = np.random.default_rng(seed)
    by = {}  # (speaker, digit) -> recordings
    for r in pool:
        by.setdefault((r.speaker, r.digit), []).append(r)
    speakers = sorted({s for s, _ in by})
    cache: dict[Path, np.ndarray] = {} if loaded is None else loaded

    def samples(r: Recording) -> np.ndarray:
        if r.path not in cache:
            y, _ = load_audio(r.path, sample_rate)
            cache[r.path] = y / max(float(np.sqrt(np.mean(y.astype(np.float64) ** 2))), 1e-6)
        return cache[r.path]

    def silence(lo: float, hi: float) -> np.ndarray:
        return np.zeros(int(rng.uniform(lo, hi) * sample_rate), np.float32)

    out = []
    for _ in range(n):
        speaker = speakers[rng.integers(len(speakers))]
        have = [d for d in range(10) if (speaker, d) in by]
        k = int(rng.integers(min_digits, max_digits + 1))
        digits = tuple(int(have[i]) for i in rng.integers(len(have), size=k))
        # drawn only when asked, so that the utterances of a seed without it stay the same
        a = float(rng.uniform(*speed)) if speed is not None else 1.0
        parts, used = [silence(0.05, 0.2)], []
        for i, d in enumerate(digits):
            choices = by[(speaker, d)]
            r = choices[rng.integers(len(choices))]
            jitter = 10 ** (rng.uniform(-3, 3) / 20) if augment else 1.0
            x = speed_perturb(samples(r), a, sample_rate)
            parts.append((x * _RMS * jitter).astype(np.float32))
            parts.append(silence(0.05, 0.3) if i < k - 1 else silence(0.05, 0.2))
            used.append(r.path.name)
        y = np.concatenate(parts)
        if augment:
            gain = 10 ** (rng.uniform(-6, 6) / 20)
            speech = np.concatenate(parts[1::2]).astype(np.float64)
            snr = rng.uniform(20, 40)
            sigma = gain * float(np.sqrt(np.mean(speech ** 2))) * 10 ** (-snr / 20)
            y = y * gain
            y = y + rng.normal(0.0, sigma, size=y.shape)
        y = np.clip(y, -1.0, 1.0).astype(np.float32)
        out.append(Utterance(y, " ".join(DIGIT_WORDS[d] for d in digits), digits, speaker,
                             tuple(used), a))
    return out
