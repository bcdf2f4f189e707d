"""The data of the asr pipeline: utterances, transcripts and normalised log-mel frames per split.

``data.source`` is ``fsdd_digits`` (connected digits synthesised from FSDD,
:mod:`rnnkit.data.digits`, split ``standard`` or ``loso:SPEAKER``), a CSV ``path,text`` or a
LibriSpeech-style folder (:mod:`rnnkit.data.speech`, split by field filters as the audio
pipeline's, else a seeded ``valid_fraction``/``test_fraction`` of the files). Features are
computed once per (audio, settings) and cached in ``~/.cache/rnnkit/asr``. ``normalize:
global`` scales every split with the training split's per-feature mean and standard
deviation; ``utterance`` scales each utterance by its own (cepstral mean and variance
normalisation per utterance: a speaker's or channel's constant spectral tilt cancels).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from rnnkit.data._show import shown
from rnnkit.data.audio import (
    AudioDataError,
    FeatureConfig,
    compute_features,
    load_audio,
    normalise_features,
    select,
)
from rnnkit.data.digits import DIGIT_WORDS, fsdd_recordings, make_utterances, split_pools
from rnnkit.data.registry import cache_dir
from rnnkit.data.speech import CharUnits, list_transcribed, normalise_text
from rnnkit.data.text import TextFileError, read_text
from rnnkit.tasks.audio import check_audio_data_config
from rnnkit.train.config import ConfigError

__all__ = ["ASRDataConfig", "check_asr_data_config", "load_asr_data", "find_fsdd",
           "TrainResynthesizer"]

_SPLIT_SEEDS = {"train": 1, "valid": 2, "test": 3}


@dataclass
class ASRDataConfig:
    """The ``data:`` section of an asr recipe.

    Attributes:
        source: "fsdd_digits", a CSV with ``path,text`` columns, or a folder of
            LibriSpeech-style ``*.trans.txt`` files.
        data_dir: where ``fsdd/recordings`` lives (else ``--data-dir``, $RNNKIT_DATA, the cache).
        split: fsdd_digits: "standard" (recording index 0-4 held out) or "loso:SPEAKER".
        train_utterances / valid_utterances / test_utterances: fsdd_digits: utterances made
            per split.
        synth_seed: fsdd_digits: seed of the utterances (split ``s`` uses [synth_seed, s]).
        min_digits / max_digits: fsdd_digits: digits per utterance.
        augment: fsdd_digits: gain and noise (see rnnkit.data.digits).
        speed_perturb: fsdd_digits: ``[lo, hi]``: each training utterance is sped up by a
            factor ~ U(lo, hi) (tempo, pitch and formants; rnnkit.data.digits); null: none.
            Validation and test utterances are never perturbed.
        resynthesize: fsdd_digits: every epoch after the first trains on new utterances (seed
            ``[synth_seed, 1, epoch]``: new digit strings, silences, gains, noise and speeds
            from the same training recordings) instead of the same ones again.
        test / valid: other sources: split filters over the files' fields ("speaker=19").
        valid_fraction / test_fraction: other sources without filters: seeded shares.
        path_column / text_column: CSV columns.
        lexicon: words beam search may spell ("auto": the digit words for fsdd_digits, none
            otherwise; a list; or null).
        features: frame features (log-mel by default).
        normalize: "global" (training mean/std per feature) or "utterance".
        spec_augment ... max_time_fraction: SpecAugment during training.
        batch_size / eval_batch_size: utterances per batch.
        cache: cache features in ~/.cache/rnnkit/asr.
    """

    source: str = "fsdd_digits"
    data_dir: str | None = None
    split: str = "standard"
    train_utterances: int = 3000
    valid_utterances: int = 300
    test_utterances: int = 500
    synth_seed: int = 0
    min_digits: int = 2
    max_digits: int = 7
    augment: bool = True
    speed_perturb: list[float] | None = None
    resynthesize: bool = False
    test: str | None = None
    valid: str | None = None
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    path_column: str = "path"
    text_column: str = "text"
    lexicon: str | list[str] | None = "auto"
    features: FeatureConfig = field(default_factory=lambda: FeatureConfig(kind="logmel"))
    normalize: Literal["global", "utterance"] = "global"
    spec_augment: bool = True
    freq_masks: int = 2
    freq_width: int = 6
    time_masks: int = 2
    time_width: int = 10
    max_time_fraction: float = 0.1
    batch_size: int = 32
    eval_batch_size: int = 64
    cache: bool = True


def check_asr_data_config(d: ASRDataConfig) -> None:
    """A :class:`ConfigError` naming the first key of ``d`` out of its range: the audio
    pipeline's checks (batch sizes, SpecAugment, ``valid_fraction``), then the asr ones."""
    check_audio_data_config(d)
    if not 0.0 <= d.test_fraction < 1.0:
        raise ConfigError("config key 'data.test_fraction': expected a fraction in [0, 1), "
                          f"got {d.test_fraction}")
    if d.train_utterances < 1:
        raise ConfigError("config key 'data.train_utterances': expected a positive integer, "
                          f"got {d.train_utterances}")
    for key in ("valid_utterances", "test_utterances"):
        if getattr(d, key) < 0:
            raise ConfigError(f"config key 'data.{key}': expected a non-negative integer "
                              f"(0: no such split), got {getattr(d, key)}")


def find_fsdd(d: ASRDataConfig, data_dir: str | None = None) -> Path:
    roots = [r for r in (data_dir, d.data_dir, os.environ.get("RNNKIT_DATA")) if r]
    roots.append(str(Path.home() / ".cache" / "rnnkit"))
    for r in roots:
        p = Path(r).expanduser() / "fsdd" / "recordings"
        if p.is_dir():
            return p
    raise AudioDataError(f"data.source 'fsdd_digits': fsdd/recordings/ not found in {roots}; pass "
                         "--data-dir DIR or set RNNKIT_DATA to the folder holding fsdd/")


def _cached(key: dict, make) -> tuple[list[np.ndarray], list[str]]:
    """``make() -> (features [(T_i, F)], texts)``, cached by the JSON of ``key``."""
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = cache_dir("asr") / f"features-{h}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return np.split(z["data"], z["ends"][:-1]), [str(t) for t in z["texts"]]
    x, texts = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, data=np.concatenate(x), ends=np.cumsum([len(a) for a in x]),
             texts=np.array(texts, dtype=str))
    tmp.replace(path)
    return x, texts


def _fsdd_digits(d: ASRDataConfig, data_dir: str | None) -> dict[str, tuple[list, list, list]]:
    """``{split: (features, texts, origins)}`` of the synthesised digit utterances."""
    recs = fsdd_recordings(find_fsdd(d, data_dir))
    pools = split_pools(recs, d.split)
    sizes = {"train": d.train_utterances, "valid": d.valid_utterances,
             "test": d.test_utterances}
    sp = d.speed_perturb
    if sp is not None and (not isinstance(sp, (list, tuple)) or len(sp) != 2):
        raise ConfigError(f"config key 'data.speed_perturb': expected [lo, hi] or null, got {sp!r}")
    out = {}
    for s, pool in pools.items():
        if sizes[s] < 1:
            continue

        speed = tuple(float(v) for v in sp) if sp is not None and s == "train" else None

        def make(pool=pool, s=s, speed=speed):
            utts = make_utterances(pool, sizes[s], [d.synth_seed, _SPLIT_SEEDS[s]],
                                   min_digits=d.min_digits, max_digits=d.max_digits,
                                   sample_rate=d.features.sample_rate, augment=d.augment,
                                   speed=speed)
            return [compute_features(u.audio, d.features) for u in utts], [u.text for u in utts]

        key = {"v": 1, "split": d.split, "part": s, "n": sizes[s], "seed": d.synth_seed,
               "digits": [d.min_digits, d.max_digits], "augment": d.augment,
               "features": asdict(d.features),
               "files": [(r.path.name, r.path.stat().st_size) for r in pool]}
        if speed is not None:  # absent otherwise: the caches made before it stay valid
            key["speed"] = list(speed)
        x, texts = _cached(key, make) if d.cache else make()
        out[s] = (x, texts, [f"fsdd_digits {d.split}/{s} utterance {i}" for i in range(len(x))])
    return out


class TrainResynthesizer:
    """Epoch ``e``'s training utterances, ``[(frames, ids, text, origin)]`` normalised with
    ``stats`` (``data.resynthesize``): made from the training pool with seed
    ``[synth_seed, 1, e]``, not cached (synthesis and log-mel take ~10 s per 3,000)."""

    def __init__(self, d: ASRDataConfig, data_dir: str | None, units: CharUnits, stats: dict):
        if d.source != "fsdd_digits":
            raise ConfigError(f"config key 'data.resynthesize': only for data.source "
                              f"'fsdd_digits', not {d.source!r}")
        self.d, self.units, self.stats = d, units, stats
        self.pool = split_pools(fsdd_recordings(find_fsdd(d, data_dir)), d.split)["train"]
        self.loaded: dict = {}

    def __call__(self, epoch: int) -> list[tuple]:
        d = self.d
        sp = tuple(float(v) for v in d.speed_perturb) if d.speed_perturb is not None else None
        utts = make_utterances(self.pool, d.train_utterances, [d.synth_seed, 1, epoch],
                               min_digits=d.min_digits, max_digits=d.max_digits,
                               sample_rate=d.features.sample_rate, augment=d.augment,
                               speed=sp, loaded=self.loaded)
        out = []
        for i, u in enumerate(utts):
            where = f"fsdd_digits {d.split}/train epoch {epoch} utterance {i}"
            f = normalise_features(compute_features(u.audio, d.features), self.stats)
            out.append((f.astype(np.float32), self.units.encode(u.text, where=where), u.text,
                        where))
        return out


def _files(d: ASRDataConfig, seed: int) -> dict[str, tuple[list, list, list]]:
    """``{split: (features, texts, origins)}`` of a CSV or trans.txt folder."""
    p = Path(d.source).expanduser()
    if not p.exists():
        raise AudioDataError(f"data.source {d.source!r}: no such file or folder; expected "
                             "'fsdd_digits', a CSV with path,text or a folder of *.trans.txt")
    items = list_transcribed(p, d.path_column, d.text_column)
    idx = set(range(len(items)))
    rng = np.random.default_rng(seed)
    test = set(select(items, d.test)) if d.test else set(
        rng.permutation(sorted(idx))[:round(d.test_fraction * len(items))].tolist())
    if d.test and not test:
        raise ConfigError(f"config key 'data.test': filter {shown(d.test)} matches none of the "
                          f"{len(items)} files of {d.source}; expected a filter that selects "
                          "the test files (or no filter and data.test_fraction)")
    rest = sorted(idx - test)
    valid = (set(select(items, d.valid)) - test) if d.valid else set(
        rng.permutation(rest)[:round(d.valid_fraction * len(items))].tolist())
    if d.valid and not valid:
        raise ConfigError(f"config key 'data.valid': filter {shown(d.valid)} matches none of "
                          f"the {len(rest)} non-test files of {d.source}; expected a filter "
                          "that selects the validation files (or no filter and "
                          "data.valid_fraction)")
    parts = {"train": sorted(set(rest) - valid), "valid": sorted(valid), "test": sorted(test)}
    if not parts["train"]:
        raise ConfigError(f"data.test={d.test!r} / data.valid={d.valid!r}: no training files")

    def feats(i: int) -> np.ndarray:
        return compute_features(load_audio(items.paths[i], d.features.sample_rate)[0],
                                d.features)

    out = {}
    for s, ids in parts.items():
        if not ids:
            continue
        key = {"v": 1, "files": [(str(items.paths[i]), os.stat(items.paths[i]).st_mtime_ns)
                                 for i in ids], "features": asdict(d.features)}
        texts = [items.texts[i] for i in ids]

        def make(ids=ids, texts=texts):
            return [feats(i) for i in ids], texts

        x, _ = _cached(key, make) if d.cache else make()
        out[s] = (x, texts, [items.origin[i] for i in ids])
    return out


def load_asr_data(d: ASRDataConfig, seed: int, data_dir: str | None = None,
                  units: CharUnits | None = None):
    """``(splits, units, stats, lexicon)``: ``splits[s] = [(frames (T, F) float32, ids, text,
    origin)]``, normalised; ``units`` from the training texts unless given (a checkpoint's)."""
    check_asr_data_config(d)
    if d.source == "fsdd_digits":
        raw = _fsdd_digits(d, data_dir)
    else:
        raw = _files(d, seed)
    if units is None:
        units = CharUnits.from_texts(raw["train"][1])
    train = np.concatenate(raw["train"][0])  # (sum T, F)
    stats = {"normalize": d.normalize, "mean": train.mean(0).tolist(),
             "std": (train.std(0) + 1e-5).tolist()}
    splits = {}
    for s, (x, texts, origin) in raw.items():
        splits[s] = [(normalise_features(f, stats).astype(np.float32),
                      units.encode(t, where=o), t, o) for f, t, o in zip(x, texts, origin)]
    if d.lexicon == "auto":
        lexicon = list(DIGIT_WORDS) if d.source == "fsdd_digits" else None
    elif d.lexicon is None:
        lexicon = None
    elif isinstance(d.lexicon, list):
        lexicon = _lexicon([(w, f"config key 'data.lexicon[{i}]'")
                            for i, w in enumerate(d.lexicon)], units)
    else:
        lexicon = _lexicon(_read_words(d.lexicon), units)
    return splits, units, stats, lexicon


def _read_words(path: str) -> list[tuple[str, str]]:
    """``[(word, "file:line")]`` of a lexicon file: UTF-8, one word a line (its first field:
    a pronunciation lexicon's ``WORD<tab>W ER D`` gives ``WORD``), blank lines skipped."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise AudioDataError(f"data.lexicon {path!r}: no such file; expected 'auto', a list of "
                             "words, null, or a file of words (one per line)")
    try:
        lines = read_text(p).split("\n")
    except TextFileError as e:
        raise AudioDataError(f"data.lexicon: {e}") from None
    return [(line.split()[0], f"{p}:{n}") for n, line in enumerate(lines, 1) if line.strip()]


def _lexicon(words: list[tuple[object, str]], units: CharUnits) -> list[str]:
    """The lexicon's words normalised as transcripts are (lower case), each checked to be
    one word spelled in ``units``; errors name ``where`` (``file:line`` or the config key)."""
    out = []
    for w, where in words:
        if not isinstance(w, str):
            raise AudioDataError(f"{where}: expected a word (a string), got {shown(w)}")
        word = normalise_text(w)
        if not word or " " in word:
            raise AudioDataError(f"{where}: expected one word, got {shown(w)}")
        bad = next((c for c in word if c not in units.index), None)
        if bad is not None:
            raise AudioDataError(f"{where}: lexicon word {shown(word)} has character {bad!r}, "
                                 f"which is not in the units; expected words spelled in "
                                 f"{''.join(units.chars)!r}")
        out.append(word)
    return out
