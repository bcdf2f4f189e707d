"""Parallel text for translation: line-aligned source/target files and known corpora.

A parallel corpus is two UTF-8 files (plain or gzip), one sentence per line, line ``i`` of
the source translating line ``i`` of the target::

    pairs = read_parallel("train.de.gz", "train.en.gz")     # [("Ein Hund.", "A dog."), ...]
    files = resolve_parallel("multi30k", "de", "en", data_dir="../shared/datasets")
    files["test"]                                           # (.../test_2016_flickr.de.gz, ...en.gz)

Rules (each violation is a one-line :class:`ParallelDataError` naming the file(s)):

- the two files must have the same number of lines (a final newline does not count as a
  line); the message names both files and both counts;
- an empty (or whitespace-only) line is an error naming the file and its 1-based line,
  unless ``skip_empty=True``: then pairs whose source *and* target are both empty are
  dropped (an empty line facing a non-empty one is still an error: it usually means the
  files are misaligned);
- bad gzip data or bytes that are not UTF-8 are reported by :func:`rnnkit.data.text.read_text`
  with the file, line and column.

Known corpora (:data:`KNOWN_PARALLEL`) are looked up like the language-modeling ones of
:mod:`rnnkit.data.registry`: ``data_dir`` (``data_dir/<name>/`` or ``data_dir/``), then
``$RNNKIT_DATA``, then the cache ``~/.cache/rnnkit/<name>/``, then a download from the
canonical URL (pinned to a commit) into the cache, written to a temporary file, checked
against its sha256 and only then renamed into place. The sha256 is that of the
*uncompressed* content (:func:`~rnnkit.data.registry.content_sha256`), so a local plain copy
and the upstream ``.gz`` both verify. A local copy that differs only warns
(:class:`~rnnkit.data.registry.ChecksumWarning`).

A folder that is not a known corpus uses the same layout: ``<file>.<lang>[.gz]`` per split,
with the split names ``train``, ``valid`` (or ``val``/``dev``: a folder holding more than one
of these is an error naming the files, since which is meant cannot be guessed) and ``test``.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.registry import (
    ChecksumWarning,
    cache_dir,
    content_sha256,
    download_checked,
)
from rnnkit.data.text import read_text

__all__ = ["ParallelDataError", "ParallelCorpus", "KNOWN_PARALLEL", "read_lines",
           "read_parallel", "resolve_parallel"]

log = logging.getLogger(__name__)


class ParallelDataError(ValueError):
    """Parallel files that cannot be used (line counts differ, empty lines, missing split)."""


# ----------------------------------------------------------------------------- reading


def read_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file (plain or gzip), without line ends; a final newline
    does not start an extra line. Errors name the file (see :func:`read_text`)."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_parallel(src: str | os.PathLike, tgt: str | os.PathLike, *,
                  skip_empty: bool = False) -> list[tuple[str, str]]:
    """Line-aligned ``(source, target)`` pairs, each side stripped of surrounding spaces.

    Args:
        src / tgt: the two files (plain or ``.gz``).
        skip_empty: drop pairs whose two lines are both empty instead of failing.

    Raises:
        ParallelDataError: different line counts (names both files and counts), or an empty
            line (names the file and the 1-based line).
        FileNotFoundError / TextFileError: missing, empty, corrupt or non-UTF-8 files.
    """
    s_lines, t_lines = read_lines(src), read_lines(tgt)
    if len(s_lines) != len(t_lines):
        raise ParallelDataError(
            f"{src} has {len(s_lines)} lines but {tgt} has {len(t_lines)}; expected line-aligned "
            "parallel files with one sentence per line")
    pairs = []
    for i, (s, t) in enumerate(zip(s_lines, t_lines), start=1):
        s, t = s.strip(), t.strip()
        if not s or not t:
            if skip_empty and not s and not t:
                continue
            where = src if not s else tgt
            raise ParallelDataError(
                f"{where}:{i}: empty line; expected one sentence per line"
                + ("" if skip_empty else " (skip_empty drops pairs where both sides are empty)"))
        pairs.append((s, t))
    if not pairs:
        raise ParallelDataError(f"{src} / {tgt}: no sentence pairs")
    return pairs


# ----------------------------------------------------------------------------- known corpora


@dataclass(frozen=True)
class ParallelCorpus:
    """A parallel corpus that can be named in a recipe.

    Attributes:
        name: registry key and folder name under data dirs and the cache.
        languages: the language codes it has (file suffixes).
        splits: split name -> file stem (``"test"`` -> ``"test_2016_flickr"``); extra
            names (``"test_2017_flickr"``) are selectable too.
        url: base URL; a file is ``{url}/{stem}.{lang}.gz``.
        sha256: ``"{stem}.{lang}"`` -> sha256 of the uncompressed content.
        description: one line for errors and help.
    """

    name: str
    languages: tuple[str, ...]
    splits: dict[str, str]
    url: str
    sha256: dict[str, str]
    description: str = ""


_MULTI30K = ("https://raw.githubusercontent.com/multi30k/dataset/"
             "a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw")

KNOWN_PARALLEL: dict[str, ParallelCorpus] = {
    "multi30k": ParallelCorpus(
        name="multi30k",
        languages=("de", "en"),
        description="Multi30k task 1 raw (image captions, En-De; Elliott et al. 2016)",
        url=_MULTI30K,
        splits={
            "train": "train",
            "valid": "val",
            "test": "test_2016_flickr",
            "test_2016_flickr": "test_2016_flickr",
            "test_2017_flickr": "test_2017_flickr",
            "test_2017_mscoco": "test_2017_mscoco",
        },
        sha256={
            "train.de": "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",
            "train.en": "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",
            "val.de": "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",
            "val.en": "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",
            "test_2016_flickr.de": (
                "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16"
            ),
            "test_2016_flickr.en": (
                "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182"
            ),
            "test_2017_flickr.de": (
                "c3078bc3b36808bf9d20eb2347ed6137016179ef59ec0d2b9b8ecc3fb2880081"
            ),
            "test_2017_flickr.en": (
                "ce1450ddc5ab0834502579d77a170849952e15a2938b34cc503bdc25ebb4fb98"
            ),
            "test_2017_mscoco.de": (
                "58277df3c75f92f7145a11b910b553d1cf82c439249d4dc237c899609eafac22"
            ),
            "test_2017_mscoco.en": (
                "43051fdfa86fd5395182e718a94ca67b1b227b9f7c79596ff0f6b813216981d2"
            ),
        },
    ),
}

#: split name -> accepted file stems in a plain folder
_FOLDER_SPLITS = {"train": ("train",), "valid": ("valid", "val", "dev"), "test": ("test",)}


def _find(d: Path, stem: str, lang: str) -> Path | None:
    for cand in (d / f"{stem}.{lang}", d / f"{stem}.{lang}.gz"):
        if cand.is_file():
            return cand
    return None


def _download(corpus: ParallelCorpus, key: str, dest_dir: Path) -> Path:
    """Fetch ``{key}.gz`` atomically: temporary file, sha256 check, rename."""
    return download_checked(f"{corpus.url}/{key}.gz", corpus.sha256[key], dest_dir / f"{key}.gz",
                            what=corpus.name, hint="without network pass --data-dir DIR or set "
                            f"RNNKIT_DATA to a folder holding {corpus.name}/")


def _resolve_known(corpus: ParallelCorpus, langs: tuple[str, str], splits: dict[str, str],
                   data_dir, download: bool) -> dict[str, tuple[Path, Path]]:
    keys = [f"{stem}.{lang}" for stem in splits.values() for lang in langs]
    roots: list[tuple[str, Path]] = []
    if data_dir is not None:
        roots.append(("data_dir", Path(data_dir).expanduser()))
    elif os.environ.get("RNNKIT_DATA"):
        roots.append(("$RNNKIT_DATA", Path(os.environ["RNNKIT_DATA"]).expanduser()))
    cache = cache_dir(corpus.name)
    found: dict[str, Path] = {}
    for label, root in roots:
        for d in (root / corpus.name, root):
            hits = {k: p for k in keys if (p := _find(d, *k.rsplit(".", 1))) is not None}
            if len(hits) == len(keys):
                found = hits
                break
        if found:
            break
        if label == "data_dir":  # the user said where the data is: no silent download
            missing = [k for k in keys if _find(root / corpus.name, *k.rsplit(".", 1)) is None]
            raise FileNotFoundError(
                f"data_dir {root}: no {', '.join(f'{k}[.gz]' for k in missing)} in "
                f"{root / corpus.name} or {root}; expected the {corpus.name} files")
    if not found:
        found = {k: p for k in keys if (p := _find(cache, *k.rsplit(".", 1))) is not None}
        missing = [k for k in keys if k not in found]
        if missing and not download:
            raise FileNotFoundError(
                f"{corpus.name}: {', '.join(f'{k}[.gz]' for k in missing)} not found in "
                f"{', '.join([str(r) for _, r in roots] + [str(cache)])} and download is off; "
                "pass --data-dir DIR or set RNNKIT_DATA")
        for k in missing:
            found[k] = _download(corpus, k, cache)
    for k, p in found.items():
        got = content_sha256(p)
        if got != corpus.sha256[k]:
            warnings.warn(f"{p}: sha256 {got} differs from the canonical {corpus.name} {k} file; "
                          "using it anyway as a user-provided copy", ChecksumWarning, stacklevel=3)
    return {s: (found[f"{stem}.{langs[0]}"], found[f"{stem}.{langs[1]}"])
            for s, stem in splits.items()}


def resolve_parallel(
    source: str | os.PathLike,
    src_lang: str,
    tgt_lang: str,
    *,
    splits: dict[str, str] | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> dict[str, tuple[Path, Path]]:
    """Find (or fetch) the ``(source file, target file)`` of each split.

    Args:
        source: a key of :data:`KNOWN_PARALLEL` (``"multi30k"``) or a folder holding
            ``<stem>.<lang>[.gz]`` files.
        src_lang / tgt_lang: language codes, e.g. ``"de"``, ``"en"``.
        splits: split name -> file stem, e.g. ``{"train": "train", "valid": "val",
            "test": "test_2017_flickr"}``; default: the corpus's ``train``/``valid``/``test``
            (for a folder: ``train``, ``valid|val|dev``, ``test``, those present).
        data_dir / download: lookup of a known corpus (see the module docstring).

    Returns:
        ``{split: (src_path, tgt_path)}``, always with ``"train"``.
    """
    key = os.fspath(source)
    if src_lang == tgt_lang:
        raise ParallelDataError(
            f"src_lang and tgt_lang are both {src_lang!r}; expected two languages"
        )
    if key in KNOWN_PARALLEL:
        corpus = KNOWN_PARALLEL[key]
        for lang in (src_lang, tgt_lang):
            if lang not in corpus.languages:
                raise ParallelDataError(f"{key}: no language {lang!r}; expected one of "
                                        f"{', '.join(corpus.languages)}")
        want = dict(splits) if splits else {s: corpus.splits[s] for s in ("train", "valid", "test")}
        for s, stem in want.items():
            stem = corpus.splits.get(stem, stem)
            if f"{stem}.{src_lang}" not in corpus.sha256:
                stems = sorted({v for v in corpus.splits.values()})
                raise ParallelDataError(f"{key}: split {s}={stem!r} is unknown; expected one of "
                                        f"{', '.join(stems)}")
            want[s] = stem
        return _resolve_known(corpus, (src_lang, tgt_lang), want, data_dir, download)
    d = Path(key).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"{key!r} is neither a known parallel corpus "
                                f"({', '.join(KNOWN_PARALLEL)}) nor a folder")
    out: dict[str, tuple[Path, Path]] = {}
    cands = {s: (stem,) for s, stem in splits.items()} if splits else _FOLDER_SPLITS
    for s, stems in cands.items():
        present = [st for st in stems
                   if _find(d, st, src_lang) or _find(d, st, tgt_lang)]
        if len(present) > 1:  # valid.* and dev.*: which one is meant cannot be guessed
            files = [str(_find(d, st, src_lang) or _find(d, st, tgt_lang)) for st in present]
            raise ParallelDataError(
                f"{d}: {' and '.join(files)} would each be the {s} split; expected one of "
                f"{', '.join(f'{st}.<lang>' for st in stems)} (remove the others, or name the "
                f"file stem in data.splits, e.g. {{{s}: {present[0]}}})")
        for stem in stems:
            a, b = _find(d, stem, src_lang), _find(d, stem, tgt_lang)
            if a and b:
                out[s] = (a, b)
                break
            if a or b:
                raise ParallelDataError(
                    f"{a or b}: has no {tgt_lang if a else src_lang} "
                    f"counterpart {d / stem}.{tgt_lang if a else src_lang}[.gz]"
                )
        if splits and s not in out:
            raise ParallelDataError(f"{d}: split {s}: no {stems[0]}.{src_lang}[.gz] and "
                                    f"{stems[0]}.{tgt_lang}[.gz]")
    if "train" not in out:
        raise ParallelDataError(f"{d}: no train.{src_lang}[.gz] / train.{tgt_lang}[.gz]; expected "
                                "<split>.<lang> files such as train.de and train.en")
    return out
