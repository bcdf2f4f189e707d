"""Speech with transcripts: folders of audio read with their text, and characters as CTC units.

A transcribed collection comes in one of two forms::

    list_transcribed("train.csv")        # header with "path" and "text" columns (paths relative
                                         # to the CSV's folder; other columns become fields)
    list_transcribed("LibriSpeech/dev-clean")   # */*/SPK-CH.trans.txt: "SPK-CH-UTT TEXT" lines,
                                                # each naming SPK-CH-UTT.{flac,wav,ogg} beside it

Both give a :class:`Transcribed` list (paths, texts, fields such as ``speaker``), read by
:func:`rnnkit.data.audio.load_audio` and featurised by ``compute_features`` as for
classification. Texts are normalised by :func:`normalise_text` (lower case, runs of
whitespace made one space) and written in :class:`CharUnits`::

    units  = CharUnits.from_texts(texts)          # 0 = CTC blank, then " ", then sorted chars
    ids    = units.encode("three one")            # [u_t, u_h, u_r, ...], no blank
    text   = units.decode(ids)

A character outside the units is an error naming the file and line it came from. Units are
characters only for now; a tokenizer's subword units would be a second ``Units`` class with
the same ``encode``/``decode``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.data._show import shown, shown_list, shown_path
from rnnkit.data.audio import AUDIO_EXTENSIONS, AudioDataError, read_csv_table
from rnnkit.data.text import TextFileError, read_text

__all__ = ["BLANK", "Transcribed", "CharUnits", "normalise_text", "list_transcripts_csv",
           "list_trans_txt", "list_transcribed", "StreamingFeatures"]

#: the CTC blank's name in :class:`CharUnits` (index 0)
BLANK = "<blank>"


def normalise_text(text: str) -> str:
    """Lower case, whitespace runs made one space: ``"Three  One\\n"`` -> ``"three one"``."""
    return " ".join(text.lower().split())


@dataclass
class Transcribed:
    """Audio files with a transcript each; ``origin[i]`` is the ``file:line`` the text came from."""

    paths: list[Path]
    texts: list[str]
    origin: list[str]
    fields: list[dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


# ----------------------------------------------------------------------------- readers


def list_transcripts_csv(path: str | Path, path_column: str = "path",
                         text_column: str = "text") -> Transcribed:
    """A CSV with a header naming ``path_column`` and ``text_column``; errors name the line."""
    path = Path(path)
    header, rows = read_csv_table(path, (path_column, text_column),
                                  f"a CSV with '{path_column}' and '{text_column}' columns")
    ip, it = header.index(path_column), header.index(text_column)
    out = Transcribed([], [], [], [])
    seen: dict[str, str] = {}  # real path -> file:line
    for n, row in rows[1:]:
        if not row:
            continue
        if len(row) != len(header):
            raise AudioDataError(f"{path}:{n}: expected {len(header)} columns, got {len(row)}")
        name, words = row[ip].strip(), normalise_text(row[it])
        if not name or not words:
            empty = path_column if not name else text_column
            raise AudioDataError(f"{path}:{n}: empty {shown(empty)}; expected an audio path "
                                 "and its transcript")
        file = Path(name) if "\0" not in name else None
        if file is not None and not file.is_absolute():
            file = path.parent / file
        if file is None or not os.path.isfile(file):
            raise AudioDataError(f"{path}:{n}: audio file {shown_path(path.parent / name)} "
                                 "not found")
        _once(seen, os.path.realpath(file), f"{path}:{n}", f"audio file {shown_path(file)}")
        out.paths.append(file)
        out.texts.append(words)
        out.origin.append(f"{path}:{n}")
        out.fields.append({h: c.strip() for h, c in zip(header, row)})
    if not out.paths:
        raise AudioDataError(f"{path}: no rows after the header")
    return out


def _once(seen: dict[str, str], key: str, where: str, what: str) -> None:
    """Record ``key`` as read at ``where``; an error if it was read before (the same audio
    twice, even with one transcript, would put it in two splits or weigh it double)."""
    if key in seen:
        raise AudioDataError(f"{where}: {what} is listed twice (also at {seen[key]}); expected "
                             "each utterance once")
    seen[key] = where


_TRANS_LINE = re.compile(r"(\S+)\s+(.*\S)\s*")


def list_trans_txt(root: str | Path) -> Transcribed:
    """LibriSpeech's layout: every ``*.trans.txt`` under ``root``, one ``ID TEXT`` line per
    utterance, the audio ``ID.flac`` (or .wav, .ogg) in the same folder. Fields: ``speaker``
    and ``chapter`` (the ID's first two dash-separated parts, when it has them)."""
    root = Path(root)
    if not root.is_dir():
        raise AudioDataError(f"{root}: no such directory; expected a folder of *.trans.txt "
                             "files and audio")
    files = sorted(root.rglob("*.trans.txt"))
    if not files:
        raise AudioDataError(f"{root}: no *.trans.txt files; expected LibriSpeech-style "
                             "transcripts (or pass a CSV with path,text)")
    out = Transcribed([], [], [], [])
    ids: dict[str, str] = {}  # utterance ID -> file:line
    audios: dict[str, str] = {}  # real path of the audio -> file:line
    for tf in files:
        try:
            lines = read_text(tf).split("\n")
        except TextFileError as e:
            raise AudioDataError(str(e)) from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            m = _TRANS_LINE.fullmatch(line)
            if m is None:
                raise AudioDataError(f"{shown_path(tf)}:{n}: expected 'UTTERANCE-ID TEXT', got "
                                     f"{shown(line)}")
            uid, words = m.group(1), normalise_text(m.group(2))
            audio = next((tf.parent / (uid + e) for e in AUDIO_EXTENSIONS
                          if (tf.parent / (uid + e)).is_file()), None)
            if audio is None:
                raise AudioDataError(f"{shown_path(tf)}:{n}: no audio {shown(uid)}"
                                     f"{{{','.join(AUDIO_EXTENSIONS)}}} in {shown_path(tf.parent)}")
            where = f"{shown_path(tf)}:{n}"
            _once(ids, uid, where, f"utterance {shown(uid)}")
            _once(audios, os.path.realpath(audio), where, f"audio file {shown_path(audio)}")
            parts = uid.split("-")
            f = {"id": uid}
            if len(parts) >= 3:
                f |= {"speaker": parts[0], "chapter": parts[1]}
            out.paths.append(audio)
            out.texts.append(words)
            out.origin.append(f"{tf}:{n}")
            out.fields.append(f)
    return out


def list_transcribed(source: str | Path, path_column: str = "path",
                     text_column: str = "text") -> Transcribed:
    """A ``.csv`` file (:func:`list_transcripts_csv`) or a folder (:func:`list_trans_txt`)."""
    source = Path(source)
    if source.suffix.lower() == ".csv" or source.is_file():
        return list_transcripts_csv(source, path_column, text_column)
    return list_trans_txt(source)


# ----------------------------------------------------------------------------- units


class CharUnits:
    """Characters as CTC output units: index 0 is the blank, the others one character each.

    Args:
        chars: the characters, in index order from 1.
    """

    def __init__(self, chars: list[str]):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise AudioDataError(f"units: expected distinct single characters, got "
                                 f"{shown_list(chars)}")
        self.chars = list(chars)
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts: list[str]) -> CharUnits:
        """Space first (if used), then the other characters sorted."""
        seen = set("".join(texts))
        return cls(([" "] if " " in seen else []) + sorted(seen - {" "}))

    def __len__(self) -> int:
        """Output classes, the blank included."""
        return len(self.chars) + 1

    @property
    def labels(self) -> list[str]:
        """Every class's name, index order: ``[BLANK, " ", "a", ...]``."""
        return [BLANK, *self.chars]

    def encode(self, text: str, where: str = "text") -> list[int]:
        """Indices of ``text``'s characters; ``where`` (e.g. ``file:line``) names it in errors."""
        try:
            return [self.index[c] for c in text]
        except KeyError as e:
            c = e.args[0]
            raise AudioDataError(
                f"{where}: character {c!r} (column {text.index(c) + 1}) is not in the units; "
                f"expected one of {''.join(self.chars)!r}") from None

    def decode(self, ids) -> str:
        """Text of unit indices (blanks skipped; no CTC collapsing: see ``greedy_decode``)."""
        return "".join(self.chars[i - 1] for i in (int(k) for k in ids) if i > 0)

    def to_json(self) -> str:
        return json.dumps({"kind": "chars", "chars": self.chars}) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CharUnits:
        d = json.loads(text)
        if d.get("kind") != "chars" or not isinstance(d.get("chars"), list):
            raise AudioDataError("units.json: expected {\"kind\": \"chars\", \"chars\": [...]}")
        return cls(d["chars"])


# ----------------------------------------------------------------------------- streaming


class StreamingFeatures:
    """``compute_features`` computed as samples arrive: ``push(y) -> (k, F)`` frames now
    complete, ``finish() -> (k', F)`` the rest; concatenated, they equal
    ``compute_features(whole, cfg)`` up to float error.

    Frame ``t`` of the centred STFT covers samples ``[t h - n/2, t h + n/2)`` of the signal
    zero-padded by ``n/2`` on both sides (librosa's ``center=True, pad_mode="constant"``), so
    it is complete once sample ``t h + n/2`` has arrived; :meth:`finish` adds the right-hand
    padding. Deltas read future frames, so streaming needs ``deltas=0``.
    """

    def __init__(self, cfg):
        if cfg.deltas:
            raise AudioDataError("streaming features need features.deltas: 0 (deltas read "
                                 "future frames)")
        self.cfg = cfg
        self.buf = np.zeros(cfg.n_fft // 2, np.float32)  # the left padding, then samples
        self.start = 0  # index in the padded signal of buf[0]
        self.frames = 0  # frames emitted
        self.samples = 0

    def _frames(self, upto: int):
        """Frames ``self.frames .. upto - 1`` from the buffer (their samples are all in it)."""
        c = self.cfg
        if upto <= self.frames:
            return np.zeros((0, c.num_features), np.float32)
        import librosa

        a = self.frames * c.hop_length - self.start
        seg = self.buf[a:(upto - 1) * c.hop_length + c.n_fft - self.start]
        mel = librosa.feature.melspectrogram(
            y=seg, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels,
            fmin=c.fmin, fmax=c.fmax, power=2.0, center=False)  # (n_mels, k)
        feats = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        if c.kind == "mfcc":
            feats = librosa.feature.mfcc(S=feats, n_mfcc=c.n_mfcc)
        self.frames = upto
        keep = self.frames * c.hop_length - self.start  # samples before the next frame: done
        self.buf, self.start = self.buf[keep:], self.start + keep
        return np.ascontiguousarray(feats.T, dtype=np.float32)  # (k, F)

    def push(self, y):
        """Append samples (float32 at ``cfg.sample_rate``); returns the frames they complete."""
        c = self.cfg
        self.buf = np.concatenate([self.buf, np.asarray(y, np.float32)])
        self.samples += len(y)
        end = self.start + len(self.buf)  # padded samples seen
        return self._frames(max(0, (end - c.n_fft) // c.hop_length + 1))

    def finish(self):
        """The last frames (the right padding added); the stream is then complete."""
        c = self.cfg
        self.buf = np.concatenate([self.buf, np.zeros(c.n_fft // 2 + c.n_fft, np.float32)])
        return self._frames(1 + self.samples // c.hop_length)
