"""Labelled texts for classification: CSV/TSV/JSONL tables, folder-per-class, IMDB, vectors.

Readers return :class:`LabeledTexts` (texts, label tuples, and where each came from, for
error messages)::

    data = read_labeled("reviews.csv", text_column="review", label_column="sentiment")
    data = read_labeled("tags.jsonl.gz", label_sep="|")          # multi-label: "a|b"
    data = read_labeled("aclImdb/train")                         # folders pos/, neg/ (.txt)
    parts = resolve_imdb(data_dir="../shared/datasets")          # {"train": path, "test": path}
    classes = label_classes(data.labels)                         # sorted label names
    y = encode_labels(data, classes)                             # one label index per text
    vecs, found = load_vectors("glove.6B.100d.txt", tokenizer)   # (V, 100), found (V,) bool

Formats: ``.csv`` (RFC 4180), ``.tsv`` (tab-separated, same quoting), ``.jsonl`` (one JSON
object per line), each plain or gzip (detected by content); a folder holds one sub-folder
per class of ``.txt`` files (``unsup`` is skipped: aclImdb's unlabelled reviews). Multi-label
rows hold several labels separated by ``label_sep``; an empty label cell is then the empty
set. Every error is one line that names the file and the 1-based line (tables: the line
the row starts on): a missing column, an empty line, an empty text or label, a label never
seen in training.

IMDB (Maas et al. 2011, 25k/25k): looked up as ``imdb/{train,test}.csv[.gz]`` (header
``text,label``, 1 = positive) or an ``aclImdb/{train,test}/{pos,neg}`` tree under
``data_dir``, ``$RNNKIT_DATA`` and the cache ``~/.cache/rnnkit/imdb``; else the official
tarball is downloaded into the cache, checked against its sha256 and unpacked.

The parts, bottom up: :mod:`rnnkit.data.textcls_formats` (the table and folder readers),
:mod:`rnnkit.data.textcls_encode` (labels, text cleanup and truncation, word vectors) and
this module, which finds or downloads IMDB and re-exports the parts' public names.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.registry import (
    ChecksumError,
    ChecksumWarning,
    DownloadError,
    cache_dir,
    content_sha256,
)
from rnnkit.data.textcls_encode import (
    clean_markup,
    encode_labels,
    label_classes,
    load_vectors,
    truncate,
)
from rnnkit.data.textcls_formats import (
    LabeledTexts,
    TextDataError,
    read_folders,
    read_labeled,
    read_table,
)

__all__ = ["TextDataError", "LabeledTexts", "read_table", "read_folders", "read_labeled",
           "label_classes", "encode_labels", "clean_markup", "truncate", "IMDB",
           "resolve_imdb", "load_vectors"]


# ----------------------------------------------------------------------------- IMDB


@dataclass(frozen=True)
class _KnownTexts:
    name: str
    files: dict[str, tuple[str, str]]  # split -> (file name, sha256 of the uncompressed CSV)
    archive_url: str
    archive_sha256: str
    archive_root: str  # folder inside the archive with {split}/{label}/*.txt
    description: str


#: the IMDB Large Movie Review Dataset v1.0 (official 25k/25k split)
IMDB = _KnownTexts(
    name="imdb",
    files={
        "train": ("train.csv", "c324c54e17ffceb54230d53ed26c7c43530fc5fe7374990773ce9871c2bf27ed"),
        "test": ("test.csv", "9c724df13b97942ce5d40e5df5d6832a522312f601e26de41cd1e7906744cf16"),
    },
    archive_url="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    archive_sha256="c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
    archive_root="aclImdb",
    description="IMDB Large Movie Review Dataset v1.0 (Maas et al. 2011), 25k train / 25k test",
)


def _find_imdb(root: Path) -> dict[str, Path] | None:
    for d in (root / IMDB.name, root):
        found = {}
        for split, (name, _) in IMDB.files.items():
            for cand in (d / name, d / f"{name}.gz", d / IMDB.archive_root / split):
                if cand.exists():
                    found[split] = cand
                    break
        if len(found) == len(IMDB.files):
            return found
    return None


def _check_imdb(found: dict[str, Path]) -> dict[str, Path]:
    for split, path in found.items():
        if path.is_file() and (got := content_sha256(path)) != IMDB.files[split][1]:
            warnings.warn(f"{path}: sha256 {got} differs from the canonical IMDB {split} CSV "
                          f"({IMDB.files[split][1]}); using it anyway as a user-provided copy",
                          ChecksumWarning, stacklevel=3)
    return found


def _download_imdb(dest: Path) -> dict[str, Path]:
    """Fetch and unpack the official tarball into ``dest`` (atomically, sha256-checked)."""
    import hashlib

    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=".aclImdb.", suffix=".part")
    tmp = Path(tmp_name)
    unpack = Path(tempfile.mkdtemp(dir=dest, prefix=".aclImdb."))
    try:
        req = urllib.request.Request(IMDB.archive_url, headers={"User-Agent": "rnnkit"})
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(req, timeout=60) as r:
                while chunk := r.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
        except OSError as e:
            reason = " ".join(str(getattr(e, "reason", e)).split())
            raise DownloadError(f"imdb: cannot download {IMDB.archive_url} ({reason}); without "
                                "network pass --data-dir DIR holding imdb/train.csv[.gz] and "
                                "test.csv[.gz] (or aclImdb/)") from None
        if h.hexdigest() != IMDB.archive_sha256:
            raise ChecksumError(
                f"{IMDB.archive_url}: sha256 mismatch (expected "
                f"{IMDB.archive_sha256}, got {h.hexdigest()}); the download was deleted"
            )
        with tarfile.open(tmp, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(f"{IMDB.archive_root}/")
                       and "/unsup/" not in f"{m.name}/" and (m.isdir() or m.name.endswith(".txt"))
                       and ".." not in m.name.split("/") and (m.isdir() or m.isfile())]
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                tar.extractall(unpack, members=members, filter="data")
            else:  # the names were checked above to stay inside aclImdb/
                tar.extractall(unpack, members=members)  # noqa: S202
        os.replace(unpack / IMDB.archive_root, dest / IMDB.archive_root)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(unpack, ignore_errors=True)
    return {s: dest / IMDB.archive_root / s for s in IMDB.files}


def resolve_imdb(
    data_dir: str | os.PathLike | None = None, *, download: bool = True
) -> dict[str, Path]:
    """``{"train": path, "test": path}`` of IMDB: CSV files or aclImdb split folders.

    Looks in ``data_dir`` (an explicit ``data_dir`` that lacks IMDB is an error),
    ``$RNNKIT_DATA``, then the cache; else downloads the official tarball (84 MB).
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if (found := _find_imdb(root)) is None:
            raise FileNotFoundError(
                f"data_dir {root}: no imdb/train.csv[.gz] and test.csv[.gz] "
                f"(or aclImdb/train, aclImdb/test) in {root / 'imdb'} or {root}"
            )
        return _check_imdb(found)
    roots = [Path(e).expanduser() for e in [os.environ.get("RNNKIT_DATA")] if e]
    roots.append(cache_dir(IMDB.name))
    for root in roots:
        if (found := _find_imdb(root)) is not None:
            return _check_imdb(found)
    if not download:
        raise FileNotFoundError(f"imdb: not found in {', '.join(map(str, roots))} and download "
                                "is off; pass --data-dir DIR or set RNNKIT_DATA")
    return _download_imdb(cache_dir(IMDB.name))
