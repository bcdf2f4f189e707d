"""Exclusive locks on run and checkpoint directories that a killed holder cannot leave stuck.

A lock is a file, e.g. ``runs/x/.rnnkit-run.lock``, held with ``flock`` for as long as the
holder needs it. The kernel drops an flock when its process dies, however it dies, so the
next taker of a killed run's lock file simply gets it: no stale-lock guessing. The file
holds the holder's pid, host and start time (JSON), for the message the next taker shows;
it is deleted on release.

Where ``flock`` is missing (Windows) or unsupported (some network filesystems answer
ENOLCK/EOPNOTSUPP), the file itself is the lock: created exclusively, and taken over only when
the pid it names is dead on this host.

Example::

    with FileLock(run_dir / ".rnnkit-run.lock", info={"cmd": "train"}).acquire(timeout=0):
        ...   # LockError("... held by pid 123 on host h since ...") if another process has it
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl

    def _flock(fd: int, op: int) -> None:
        fcntl.flock(fd, op)

    _LOCK_EX_NB, _LOCK_UN = fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN
except ImportError:  # Windows
    _flock = None
    _LOCK_EX_NB = _LOCK_UN = 0

__all__ = ["FileLock", "LockError", "describe_holder"]

#: errors of an flock that the filesystem does not support (the pid-file protocol takes over)
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_BUSY = {errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK}


class LockError(OSError):
    """Another live process holds the lock (one-line message naming the holder)."""


def describe_holder(info: dict[str, Any] | None) -> str:
    """``"pid 123 on host h since 2025-01-01 12:00:00"`` from a lock file's JSON, or a
    placeholder."""
    if not info:
        return "another process"
    text = f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"
    if info.get("since"):
        text += f" since {info['since']}"
    return text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or we cannot tell: assume alive)
    return True


class FileLock:
    """An exclusive lock on ``path`` for this process, until :meth:`release`, the object's
    garbage collection or the process's death.

    Args:
        path: the lock file (created, with its parent directory, when taken).
        info: extra JSON fields for the file (the pid, host and time are always written).
    """

    def __init__(self, path: str | os.PathLike, info: dict[str, Any] | None = None):
        self.path = Path(path)
        self.info = dict(info or {})
        self._fd: int | None = None
        self._pidfile = False
        self.made_directory = False  # whether taking the lock created ``path``'s directory

    @property
    def held(self) -> bool:
        return self._fd is not None or self._pidfile

    def holder(self) -> dict[str, Any] | None:
        """The current holder's JSON from the file (None if unreadable or being written)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _payload(self) -> bytes:
        since = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": since, **self.info}
        return json.dumps(info).encode()

    # ------------------------------------------------------------------ taking

    def try_acquire(self) -> bool:
        """Take the lock if it is free (or its holder is dead); False if a live process has it."""
        if self.held:
            return True
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.made_directory = True
        if _flock is None:
            return self._try_pidfile()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                _flock(fd, _LOCK_EX_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in _BUSY:
                    return False
                if e.errno not in _NO_FLOCK:
                    raise
                try:  # the empty file this attempt created is no holder's
                    if os.path.getsize(self.path) == 0:
                        os.unlink(self.path)
                except OSError:
                    pass
                return self._try_pidfile()
            # the previous holder deletes the file on release: if ours is no longer the one at
            # ``path``, we locked a deleted file; open the new one and try again
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, self._payload())
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return True

    def _try_pidfile(self) -> bool:
        """The lock without flock: the file exists while held; a dead holder's file is replaced."""
        payload = self._payload()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                if not self._stale():
                    return False
                # stale: move it aside atomically so that only one taker removes it
                aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
                try:
                    os.replace(self.path, aside)
                    os.unlink(aside)
                except FileNotFoundError:
                    pass
                continue
            try:
                os.write(fd, payload)
            finally:
                os.close(fd)
            self._pidfile = True
            return True
        return False

    def _stale(self) -> bool:
        """The pid file's holder is dead: its pid is gone on this host, or it died before
        writing the file (empty or unreadable for 10 s). A holder on another host is alive."""
        info = self.holder() or {}
        pid = info.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            try:
                return time.time() - os.path.getmtime(self.path) > 10
            except OSError:
                return False
        return info.get("host") == socket.gethostname() and not _pid_alive(pid)

    def acquire(self, timeout: float | None = None, poll: float = 0.05) -> FileLock:
        """Take the lock, waiting up to ``timeout`` seconds (None: forever; 0: not at all).

        Raises:
            LockError: still held by another live process after ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                raise LockError(f"{self.path}: held by {describe_holder(self.holder())}")
            time.sleep(poll)
        return self

    # ------------------------------------------------------------------ giving back

    def release(self) -> None:
        """Delete the file and drop the lock (the file goes first, while it is still ours).

        A file that cannot be deleted stays behind; the next taker takes it over.
        """
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.unlink(self.path)
            except OSError:
                pass
            finally:
                os.close(fd)  # drops the flock, even if the unlink failed
        elif self._pidfile:
            self._pidfile = False
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
