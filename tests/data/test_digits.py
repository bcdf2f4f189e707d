"""Speed perturbation of the connected FSDD digits: its factor, pitch and determinism."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("librosa")

from rnnkit.data.audio import AudioDataError, load_audio  # noqa: E402
from rnnkit.data.digits import (  # noqa: E402
    fsdd_recordings,
    make_utterances,
    speed_perturb,
    split_pools,
)

FSDD = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD not found at {FSDD} "
                                "(../shared/datasets/fsdd: see its README)")
SR = 8000


@pytest.fixture(scope="module", autouse=True)
def _resampler_loaded():
    speed_perturb(np.zeros(64, np.float32), 0.9, SR)  # librosa loads soxr on first use (~5 s)


def peak_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / SR)[spec.argmax()])


@pytest.mark.parametrize("a", [0.8, 0.9, 1.1, 1.25])
def test_speed_perturb_scales_length_and_pitch_by_the_factor(a):
    y = np.sin(2 * np.pi * 500.0 * np.arange(SR) / SR).astype(np.float32)  # 1 s of 500 Hz
    z = speed_perturb(y, a, SR)
    assert len(z) == int(np.ceil(SR / a))  # 1 s played a times faster lasts 1/a s
    assert peak_hz(z) == pytest.approx(500.0 * a, abs=2.0)  # ... at a times the pitch
    mid = z[len(z) // 4: 3 * len(z) // 4]  # band-limited: the tone keeps its level
    assert np.sqrt(np.mean(mid ** 2)) == pytest.approx(np.sqrt(0.5), rel=0.02)
    assert speed_perturb(y, 1.0, SR) is y


@needs_fsdd
def test_speed_perturbed_utterances_are_seeded_and_lengthen_each_digit_by_1_over_a():
    pool = split_pools(fsdd_recordings(FSDD), "loso:george")["train"]
    a = make_utterances(pool, 4, seed=5, speed=(0.85, 1.15))
    b = make_utterances(pool, 4, seed=5, speed=(0.85, 1.15))
    for u, v in zip(a, b):
        assert np.array_equal(u.audio, v.audio) and u.speed == v.speed
        assert 0.85 <= u.speed <= 1.15 and u.speed != 1.0
    assert len({u.speed for u in a}) == 4  # one factor per utterance
    # a fixed factor draws the same random numbers as any other (without the noise, whose
    # draws follow the length): same digits, recordings and silences, so the utterances
    # differ exactly by each digit's ceil(N / a) - N samples
    slow = make_utterances(pool, 3, seed=5, speed=(0.8, 0.8), augment=False)
    same = make_utterances(pool, 3, seed=5, speed=(1.0, 1.0), augment=False)
    n = {r.path.name: len(load_audio(r.path, SR)[0]) for r in pool}
    for u, v in zip(slow, same):
        assert u.sources == v.sources and u.speed == 0.8 and v.speed == 1.0
        extra = sum(int(np.ceil(n[s] / 0.8)) - n[s] for s in u.sources)
        assert len(u.audio) - len(v.audio) == extra > 0
    # without speed perturbation no factor is drawn: the earlier utterances stay as they were
    plain = make_utterances(pool, 3, seed=5, augment=False)
    assert all(u.speed == 1.0 for u in plain)
    assert [u.sources for u in plain] != [u.sources for u in same]
    with pytest.raises(AudioDataError, match=r"data\.speed_perturb: expected \[lo, hi\]"):
        make_utterances(pool, 1, seed=0, speed=(1.2, 0.9))
