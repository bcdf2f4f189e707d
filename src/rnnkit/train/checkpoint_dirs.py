"""Where a checkpoint lives: atomic publication of its directory, and recovery after a kill.

For ``<parent>/<name>``, under the lock ``<parent>/.<name>.lock``: a complete
``.<name>.new-S`` directory replaces ``<name>`` by renames (:func:`_publish`), and
:func:`resolve_checkpoint` finishes what a killed writer left (see
:mod:`rnnkit.train.checkpoint` for the protocol). Nothing here reads or writes a
checkpoint's files; the writer (:mod:`rnnkit.train.checkpoint`) and the readers
(:mod:`rnnkit.train.checkpoint_read`) both build on it.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from rnnkit.train.lock import FileLock

__all__ = ["resolve_checkpoint", "recover_interrupted", "has_checkpoint"]


# --------------------------------------------------------------------------- publishing


def _fsync(path: Path, directory: bool = False) -> None:
    """Flush a file's (or a directory's entries') data to disk; skipped where the OS cannot."""
    try:
        fd = os.open(path, os.O_RDONLY if directory else os.O_RDWR)
    except OSError:
        if not directory:
            raise
        return  # directories cannot be opened on Windows
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _stamp() -> str:
    """A name part that sorts by time: nanoseconds since the epoch, then the pid."""
    return f"{time.time_ns():020d}-{os.getpid()}"


def _lock(final: Path) -> FileLock:
    return FileLock(final.parent / f".{final.name}.lock", info={"checkpoint": final.name})


def _publish(final: Path, new: Path) -> None:
    """Move the complete ``new`` to ``final``; the previous ``final`` is moved aside, then
    deleted."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f".{final.name}.old-{_stamp()}"
        os.rename(final, old)
    os.rename(new, final)
    _fsync(final.parent, directory=True)
    if old is not None:
        _discard(old)


def _remove(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # garbage that stays is deleted by the next recovery


def _discard(path: Path) -> None:
    """Delete a complete (``.new-``/``.old-``) directory: renamed ``.del-`` first, so a kill
    in the middle of the deletion never leaves a half-deleted directory under a complete name."""
    name = path.name
    head, _, _ = name.rpartition(".")
    garbage = path.with_name(f"{head}.del-{_stamp()}")
    try:
        os.rename(path, garbage)
    except OSError:
        return
    _remove(garbage)


# --------------------------------------------------------------------------- recovery

_KINDS = ("tmp", "new", "old", "del")


def _entries(final: Path) -> dict[str, list[Path]]:
    """The temporaries of ``final`` by kind, oldest first (legacy ``.old-PID`` names sort first),
    and its lock file under ``"lock"``."""
    out: dict[str, list[tuple[tuple[int, float], Path]]] = {k: [] for k in _KINDS + ("lock",)}
    prefix = f".{final.name}."
    with os.scandir(final.parent) as it:
        for e in it:
            if not e.name.startswith(prefix):
                continue
            if e.name == f"{prefix}lock":  # a lock file: held, or left by a killed holder
                out["lock"].append(((0, 0.0), Path(e.path)))
                continue
            kind, _, stamp = e.name[len(prefix):].partition("-")
            if kind not in out or not stamp:
                continue
            first = stamp.split("-")[0]
            ns = int(first) if first.isdigit() and len(first) == 20 else 0
            try:
                mtime = e.stat(follow_symlinks=False).st_mtime
            except OSError:
                mtime = 0.0
            out[kind].append(((ns, mtime), Path(e.path)))
    return {k: [p for _, p in sorted(v)] for k, v in out.items()}


def _recover(final: Path) -> None:
    """With the lock held: move the newest complete checkpoint to ``final`` and delete the rest."""
    e = _entries(final)
    if e["new"]:
        _publish(final, e["new"].pop())
    elif e["old"] and not (final.exists() or final.is_symlink()):
        os.rename(e["old"].pop(), final)
        _fsync(final.parent, directory=True)
    for p in e["new"] + e["old"]:
        _discard(p)
    for p in e["tmp"] + e["del"]:
        _remove(p)


def _newest_complete(final: Path, e: dict[str, list[Path]]) -> Path:
    if e["new"]:
        return e["new"][-1]
    if final.exists() or not e["old"]:
        return final
    return e["old"][-1]


def resolve_checkpoint(directory: str | os.PathLike) -> Path:
    """The directory that holds the newest complete checkpoint for ``directory``.

    Normally ``directory`` itself. If a writer was killed part-way, this finishes its move
    (or puts the previous checkpoint back) and deletes the temporaries, holding the
    checkpoint's lock, so a running writer's files are never touched; while a live writer
    is between its two renames it waits for it. Where the lock cannot be taken (a
    read-only directory), nothing is changed and the path of the newest complete
    checkpoint (perhaps a ``.<name>.new-S`` or ``.<name>.old-S`` directory) is returned.
    """
    final = Path(directory)
    if final.name in ("", ".", ".."):
        return final
    try:
        e = _entries(final)
    except OSError:
        return final
    if not any(e.values()):
        return final
    lock = _lock(final)
    try:
        got = lock.try_acquire()
        if not got and not final.exists():  # a live writer between its renames: wait for it
            lock.acquire(timeout=60)
            got = True
    except OSError:  # LockError, or the directory is read-only
        got = False
    if got:
        try:
            _recover(final)
            return final
        except OSError:
            pass
        finally:
            lock.release()
    try:
        return _newest_complete(final, _entries(final))
    except OSError:
        return final


def recover_interrupted(directory: str | os.PathLike) -> None:
    """Repair what a killed save left at ``directory`` (see :func:`resolve_checkpoint`)."""
    resolve_checkpoint(directory)


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` or a complete temporary of it (a killed save's) exists."""
    final = Path(directory)
    if final.exists():
        return True
    try:
        e = _entries(final)
    except OSError:
        return False
    return bool(e["new"] or e["old"])
