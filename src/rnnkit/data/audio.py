"""Audio for classification: labelled file lists, reading, log-mel/MFCC features, SpecAugment.

A labelled audio collection comes in one of three forms::

    list_audio("speech/")                       # speech/<label>/*.wav   (labels from subfolders)
    list_audio("labels.csv")                    # header with "path" and "label" columns
    list_audio("fsdd/recordings", labels="pattern", pattern="{label}_{speaker}_{index}")

Each gives an :class:`AudioList` whose ``fields`` (pattern fields, extra CSV columns) can
select a split with :func:`select` (``"index<5"``, ``"speaker=theo"``). Files are read by
soundfile (WAV, FLAC, OGG), mixed down to mono and resampled with librosa (soxr) when the
wanted rate differs. Features, per frame ``t`` of ``T = 1 + floor(N / hop)`` frames::

    S[m, t]   = sum_k M[m, k] |STFT(y)[k, t]|^2          mel power, M: n_mels triangular filters
    logmel    = 10 log10(max(S, 1e-10))                   (T, n_mels)
    mfcc      = DCT-II(logmel)[:n_mfcc]                   (T, n_mfcc), librosa's orthonormal DCT

SpecAugment (Park et al. 2019) zeroes ``freq_masks`` bands of ``f ~ U{0..freq_width}``
features and ``time_masks`` spans of ``t ~ U{0..min(time_width, p * T_b)}`` frames of each
sequence ``b``; features are normalised to zero mean first, so 0 is the mean value.

Shapes: ``B`` batch, ``T`` frames, ``F`` features per frame.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from rnnkit.data._show import shown, shown_list, shown_path
from rnnkit.data.registry import cache_dir
from rnnkit.data.text import TextFileError, read_text

__all__ = ["AUDIO_EXTENSIONS", "AudioDataError", "AudioList", "list_from_folders",
           "list_from_csv", "read_csv_table", "list_from_pattern", "list_audio", "select",
           "load_audio", "FeatureConfig", "compute_features", "feature_table", "spec_augment",
           "collate"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


class AudioDataError(ValueError):
    """An audio collection, label file or audio file that cannot be used (one-line message)."""


@dataclass
class AudioList:
    """Audio files with a string label each, and per-file fields for splitting."""

    paths: list[Path]
    labels: list[str]
    fields: list[dict[str, str]] = field(default_factory=list)
    #: where each file was listed, for errors: ``list.csv:LINE``, else the file (empty: paths)
    where: list[str] = field(default_factory=list)

    def place(self, i: int) -> str:
        """Where item ``i`` was listed (its CSV line, else its file)."""
        return self.where[i] if self.where else shown_path(self.paths[i])

    def __len__(self) -> int:
        return len(self.paths)

    def classes(self) -> list[str]:
        """Sorted distinct labels (numeric labels sorted as numbers)."""
        labels = set(self.labels)
        numeric = all(re.fullmatch(r"-?\d+", s) for s in labels)
        return sorted(labels, key=(lambda s: int(s)) if numeric else None)

    def subset(self, idx: list[int]) -> AudioList:
        return AudioList([self.paths[i] for i in idx], [self.labels[i] for i in idx],
                         [self.fields[i] for i in idx],
                         [self.where[i] for i in idx] if self.where else [])


def _audio_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )


def _need_dir(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise AudioDataError(f"{root}: no such directory; expected a folder of audio files")
    return root


# ----------------------------------------------------------------------------- labels


def list_from_folders(root: str | Path) -> AudioList:
    """``root/<label>/*.{wav,flac,ogg}``: the label is the subfolder's name."""
    root = _need_dir(root)
    paths, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in _audio_files(sub):
            paths.append(f)
            labels.append(sub.name)
    if not paths:
        raise AudioDataError(f"{root}: no audio files in label subfolders; expected "
                             f"{root}/<label>/*{{{','.join(AUDIO_EXTENSIONS)}}}")
    return AudioList(paths, labels, [{"label": s} for s in labels])


def read_csv_table(path: Path, columns: tuple[str, ...], what: str
                   ) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A CSV's stripped header and its rows as ``(line the row starts on, cells)``, the header
    row first. Raises :class:`AudioDataError` naming the file (and line) for a missing,
    unreadable, malformed or empty file, a header without one of ``columns`` or a name
    given twice; ``what`` says what the file should be ("a CSV of audio paths and labels")."""
    if not path.is_file():
        raise AudioDataError(f"{path}: no such file; expected {what}")
    try:
        text = read_text(path)  # UTF-8 (plain or gzip); a bad byte names line and column
    except TextFileError as e:
        raise AudioDataError(str(e)) from None
    csv.field_size_limit(1 << 30)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []  # (line the row starts on, cells)
    start = 1
    try:
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as e:
        raise AudioDataError(f"{path}:{start}: malformed CSV ({e})") from None
    expected = " and ".join(f"'{c}'" for c in columns)
    if not rows or not rows[0][1]:
        raise AudioDataError(f"{path}: empty CSV; expected a header with {expected} columns")
    header = [h.strip() for h in rows[0][1]]
    for col in columns:
        if col not in header:
            raise AudioDataError(f"{path}:1: no {shown(col)} column in the header "
                                 f"{shown_list(header)}; expected {expected}")
    for h in header:
        if header.count(h) > 1:
            raise AudioDataError(f"{path}:1: column {shown(h)} appears twice; expected unique "
                                 "names")
    return header, rows


def list_from_csv(path: str | Path, path_column: str = "path",
                  label_column: str = "label") -> AudioList:
    """A CSV with a header; audio paths are relative to the CSV's folder. Other columns
    become fields (e.g. a ``split`` column for ``select(..., "split=test")``). Errors name
    the CSV's line on which the row starts (1-based; the header is line 1)."""
    path = Path(path)
    header, rows = read_csv_table(path, (path_column, label_column),
                                  "a CSV of audio paths and labels")
    ip, il = header.index(path_column), header.index(label_column)
    paths, labels, fields, where = [], [], [], []
    seen: dict[str, str] = {}  # real path -> where it was first listed
    for n, row in rows[1:]:
        if not row:  # a blank line
            continue
        if len(row) != len(header):
            raise AudioDataError(f"{path}:{n}: expected {len(header)} columns, got {len(row)}")
        name, label = row[ip].strip(), row[il].strip()
        if not name:
            raise AudioDataError(f"{path}:{n}: empty {shown(path_column)}")
        if not label:
            raise AudioDataError(f"{path}:{n}: empty {shown(label_column)}")
        file = Path(name) if name and "\0" not in name else None
        if file is not None and not file.is_absolute():
            file = path.parent / file
        if file is None or not os.path.isfile(file):  # isfile: False for an over-long name too
            raise AudioDataError(
                f"{path}:{n}: audio file {shown_path(path.parent / name)} not found"
            )
        key = os.path.realpath(file)
        if key in seen:  # with two labels, which would it be?
            raise AudioDataError(f"{path}:{n}: audio file {shown_path(file)} is listed twice "
                                 f"(also at {seen[key]}); expected each file once")
        seen[key] = f"{path}:{n}"
        paths.append(file)
        labels.append(label)
        fields.append({h: c.strip() for h, c in zip(header, row)} | {"label": label})
        where.append(f"{path}:{n}")
    if not paths:
        raise AudioDataError(f"{path}: no rows after the header")
    return AudioList(paths, labels, fields, where)


def _pattern_regex(pattern: str) -> re.Pattern:
    """``"{label}_{speaker}_{index}"`` -> a regex with one named group per field."""
    parts = re.split(r"\{(\w+)\}", pattern)
    names = parts[1::2]
    if "label" not in names:
        raise AudioDataError(f"pattern {pattern!r}: needs a {{label}} field")
    if len(set(names)) != len(names):
        raise AudioDataError(f"pattern {pattern!r}: a field appears twice")
    body = "".join(re.escape(s) if i % 2 == 0 else f"(?P<{s}>.+?)" for i, s in enumerate(parts))
    return re.compile(body)


def list_from_pattern(root: str | Path, pattern: str = "{label}_{speaker}_{index}") -> AudioList:
    """Labels (and other fields) parsed from file names without extension, e.g. FSDD's
    ``7_theo_12.wav`` with ``"{label}_{speaker}_{index}"``."""
    root = _need_dir(root)
    rx = _pattern_regex(pattern)
    files = _audio_files(root)
    if not files:
        raise AudioDataError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    paths, labels, fields = [], [], []
    for f in files:
        m = rx.fullmatch(f.stem)
        if m is None:
            raise AudioDataError(
                f"{shown_path(f)}: file name does not match the pattern {shown(pattern)}"
            )
        paths.append(f)
        labels.append(m["label"])
        fields.append(m.groupdict())
    return AudioList(paths, labels, fields)


def list_audio(source: str | Path, labels: Literal["auto", "folders", "csv", "pattern"] = "auto",
               pattern: str = "{label}_{speaker}_{index}", path_column: str = "path",
               label_column: str = "label") -> AudioList:
    """Any of the three forms; ``"auto"``: a ``.csv`` file, else subfolders, else the pattern."""
    source = Path(source)
    if labels == "auto":
        if source.suffix.lower() == ".csv":
            labels = "csv"
        elif source.is_dir() and any(p.is_dir() for p in source.iterdir()):
            labels = "folders"
        else:
            labels = "pattern"
    if labels == "csv":
        return list_from_csv(source, path_column, label_column)
    if labels == "folders":
        return list_from_folders(source)
    if labels == "pattern":
        return list_from_pattern(source, pattern)
    raise AudioDataError(f"labels: expected 'auto', 'folders', 'csv' or 'pattern', got {labels!r}")


_FILTER = re.compile(r"\s*(\w+)\s*(!=|<=|>=|=|<|>)\s*(.+?)\s*")


def select(items: AudioList, expr: str) -> list[int]:
    """Indices whose fields satisfy ``expr``: ``field=v[,v...]``, ``field!=v[,v...]`` or a
    numeric comparison ``field<n`` (also ``<=``, ``>``, ``>=``), e.g. FSDD's ``index<5``."""
    m = _FILTER.fullmatch(expr)
    if m is None:
        raise AudioDataError(
            f"split filter {shown(expr)}: expected FIELD=VALUE[,VALUE], FIELD!=VALUE "
            "or FIELD<NUMBER (also <=, >, >=)"
        )
    name, op, value = m.groups()
    known = sorted(items.fields[0]) if items.fields else []
    if name not in known:
        raise AudioDataError(
            f"split filter {shown(expr)}: unknown field {shown(name)}; the files have {known}"
        )
    if op in ("=", "!="):
        wanted = {v.strip() for v in value.split(",")}
        return [i for i, f in enumerate(items.fields) if (f[name] in wanted) == (op == "=")]
    try:
        bound = float(value)
        nums = [float(f[name]) for f in items.fields]
    except ValueError:
        raise AudioDataError(
            f"split filter {shown(expr)}: '{op}' needs numbers, and field {shown(name)} "
            "or the bound is not numeric"
        ) from None
    if not math.isfinite(bound):
        raise AudioDataError(
            f"split filter {shown(expr)}: the bound {shown(value)} is not a finite number"
        )
    for i, x in enumerate(nums):
        if not math.isfinite(x):
            raise AudioDataError(
                f"split filter {shown(expr)}: field {shown(name)} is "
                f"{shown(items.fields[i][name])} "
                f"in {shown_path(items.paths[i])}; '{op}' needs finite numbers"
            )
    cmp = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[op]
    return [i for i, x in enumerate(nums) if cmp(x, bound)]


# ----------------------------------------------------------------------------- reading


def load_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples of ``path`` and their rate, resampled to ``sample_rate`` if given."""
    import soundfile as sf

    path = Path(path)
    where = shown_path(path)  # a name from a folder listing may hold a newline
    if not path.is_file():
        raise AudioDataError(f"{where}: no such audio file")
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        msg = " ".join(str(e).split())
        raise AudioDataError(
            f"{where}: cannot read audio ({msg}); expected WAV, FLAC or OGG"
        ) from None
    if y.shape[0] == 0:
        raise AudioDataError(f"{where}: the audio file has no samples")
    if not np.isfinite(y).all():  # float WAV/FLAC can hold inf and nan
        n, c = (int(v[0]) for v in np.nonzero(~np.isfinite(y)))
        raise AudioDataError(
            f"{where}: sample {n + 1} (1-based), channel {c + 1}: non-finite value "
            f"{y[n, c]} (expected finite samples)"
        )
    y = y.mean(axis=1)  # (N,): mono
    if sample_rate is not None and sr != sample_rate:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate).astype(np.float32)
        sr = sample_rate
    return y, int(sr)


# ----------------------------------------------------------------------------- features


@dataclass
class FeatureConfig:
    """Frame features: ``kind`` "logmel" (F = n_mels) or "mfcc" (F = n_mfcc), and deltas
    (``deltas=1`` appends first differences, 2 also second: F times 2 or 3)."""

    kind: Literal["logmel", "mfcc"] = "mfcc"
    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 80
    n_mels: int = 40
    n_mfcc: int = 20
    fmin: float = 0.0
    fmax: float | None = None
    deltas: int = 0

    def __post_init__(self):
        for key in ("sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise AudioDataError(f"features.{key}: expected a positive integer, got {v!r}")
        if self.kind not in ("logmel", "mfcc"):
            raise AudioDataError(f"features.kind: expected 'logmel' or 'mfcc', got {self.kind!r}")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise AudioDataError(f"features.n_mfcc={self.n_mfcc}: at most n_mels={self.n_mels}")
        if self.deltas not in (0, 1, 2):
            raise AudioDataError(f"features.deltas: expected 0, 1 or 2, got {self.deltas!r}")
        top = self.sample_rate / 2
        if not 0 <= self.fmin < (self.fmax or top) <= top:
            raise AudioDataError(f"features.fmin/fmax: expected 0 <= fmin < fmax <= sample_rate/2 "
                                 f"= {top:g}, got fmin={self.fmin}, fmax={self.fmax}")

    @property
    def num_features(self) -> int:
        return (self.n_mels if self.kind == "logmel" else self.n_mfcc) * (1 + self.deltas)


def compute_features(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """(N,) samples at ``cfg.sample_rate`` -> (T, F) float32 log-mel or MFCC frames."""
    import librosa

    if y.shape[0] < cfg.n_fft // 2 + 1:  # librosa's centred STFT needs half a window
        y = np.pad(y, (0, cfg.n_fft // 2 + 1 - y.shape[0]))
    mel = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
        fmin=cfg.fmin, fmax=cfg.fmax, power=2.0)  # (n_mels, T)
    feats = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)  # (n_mels, T)
    if cfg.kind == "mfcc":
        feats = librosa.feature.mfcc(S=feats, n_mfcc=cfg.n_mfcc)  # (n_mfcc, T)
    if cfg.deltas:
        width = min(9, feats.shape[1] if feats.shape[1] % 2 else feats.shape[1] - 1)
        if width >= 3:
            ds = [
                librosa.feature.delta(feats, order=k, width=width) for k in range(1, cfg.deltas + 1)
            ]
        else:  # a clip of one or two frames has no defined slope
            ds = [np.zeros_like(feats)] * cfg.deltas
        feats = np.concatenate([feats, *ds], axis=0)  # ((1+deltas)*F0, T)
    return np.ascontiguousarray(feats.T, dtype=np.float32)  # (T, F)


def normalise_features(x: np.ndarray, stats: dict) -> np.ndarray:
    """Features (T, F) normalised as ``stats["normalize"]`` says: "global" with the training
    set's ``mean``/``std`` (per feature), "utterance" with the clip's own, else unchanged."""
    if stats["normalize"] == "global":
        return (x - np.asarray(stats["mean"], np.float32)) / np.asarray(stats["std"], np.float32)
    if stats["normalize"] == "utterance":
        return (x - x.mean(0)) / (x.std(0) + 1e-5)
    return x


def _cache_key(paths: list[Path], cfg: FeatureConfig) -> str:
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def feature_table(items: AudioList, cfg: FeatureConfig, cache: bool = True) -> list[np.ndarray]:
    """Features of every file, ``[(T_i, F)]``; cached in ``~/.cache/rnnkit/audio`` by content
    key (paths, sizes, modification times and the feature config)."""
    path = cache_dir("audio") / f"features-{_cache_key(items.paths, cfg)}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            data, ends = z["data"], z["ends"]
        return np.split(data, ends[:-1])
    out = [compute_features(load_audio(p, cfg.sample_rate)[0], cfg) for p in items.paths]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, data=np.concatenate(out), ends=np.cumsum([len(a) for a in out]))
        tmp.replace(path)
    return out


# ----------------------------------------------------------------------------- batches


def spec_augment(x: Tensor, lengths: Tensor, *, freq_masks: int = 2, freq_width: int = 8,
                 time_masks: int = 2, time_width: int = 10, max_time_fraction: float = 0.2,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """SpecAugment masking of a padded batch ``x (B, T, F)``; returns ``(masked x, mask)``.

    Each sequence gets its own masks: ``freq_masks`` bands ``[f0, f0 + f)`` with
    ``f ~ U{0..freq_width}``, and ``time_masks`` spans ``[t0, t0 + t)`` inside its length
    with ``t ~ U{0..min(time_width, floor(max_time_fraction * T_b))}``. ``mask (B, T, F)``
    is True where ``x`` was set to 0.
    """
    B, T, F = x.shape
    dev = x.device
    lengths = lengths.to(dev)

    def spans(n: int, width: Tensor, extent: Tensor, size: int) -> Tensor:
        """(B, size) True inside n random spans per row; width/extent: (B,) upper bounds."""
        out = torch.zeros(B, size, dtype=torch.bool, device=dev)
        pos = torch.arange(size, device=dev)  # (size,)
        for _ in range(n):
            u = torch.rand(B, 2, generator=generator).to(dev)  # (B, 2)
            w = torch.floor(u[:, 0] * (width + 1)).long()  # U{0..width}
            start = torch.floor(u[:, 1] * (extent - w + 1).clamp(min=1)).long()  # U{0..extent-w}
            out |= (pos >= start[:, None]) & (pos < (start + w)[:, None])
        return out

    fw = torch.full((B,), min(freq_width, F), device=dev)
    tw = torch.minimum(torch.full((B,), time_width, device=dev),
                       torch.floor(max_time_fraction * lengths).long())
    fmask = spans(freq_masks, fw, torch.full((B,), F, device=dev), F)  # (B, F)
    tmask = spans(time_masks, tw, lengths, T)  # (B, T)
    mask = fmask[:, None, :] | tmask[:, :, None]  # (B, T, F)
    valid = torch.arange(T, device=dev)[None, :] < lengths[:, None]  # (B, T)
    mask &= valid[:, :, None]
    return x.masked_fill(mask, 0.0), mask


def collate(items: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """``[(features (T_i, F), label)]`` -> ``x (B, T_max, F)`` zero-padded, ``lengths (B,)``,
    ``y (B,)``."""
    lengths = torch.tensor([f.shape[0] for f, _ in items])
    x = torch.nn.utils.rnn.pad_sequence([f for f, _ in items], batch_first=True)  # (B, T, F)
    y = torch.tensor([int(label) for _, label in items])
    return x, lengths, y

