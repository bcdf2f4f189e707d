"""The file lock behind run and checkpoint directories (rnnkit.train.lock).

An flock held for the holder's lifetime, so a killed holder's lock is free at once; the
file names the holder for the next taker's message and is deleted on release. Where flock
is unsupported, the file is a pid file checked for liveness.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest


def _kill(p):
    p.kill()
    p.wait(timeout=60)


def test_killed_holder_leaves_its_file_and_no_lock(tmp_path):
    from rnnkit.train.lock import FileLock

    path = tmp_path / ".x.lock"
    code = f"from rnnkit.train.lock import FileLock; import time; lock = FileLock({str(path)!r}).acquire(); " \
           f"print('locked', flush=True); time.sleep(600)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert not FileLock(path).try_acquire()
    finally:
        _kill(holder)  # SIGKILL: no clean-up ran
    assert json.loads(path.read_text())["pid"] == holder.pid
    with FileLock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_lock_in_process_and_release(tmp_path):
    from rnnkit.train.lock import FileLock, LockError

    path = tmp_path / "d" / ".x.lock"
    a = FileLock(path, info={"what": "test"})
    assert a.try_acquire()
    holder = json.loads(path.read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["what"] == "test"
    b = FileLock(path)
    assert not b.try_acquire()
    with pytest.raises(LockError, match=f"pid {os.getpid()}"):
        b.acquire(timeout=0.05)
    a.release()
    assert not path.exists()
    with b:
        assert path.exists()
    assert not path.exists()


def test_lock_waits_for_release(tmp_path):
    from rnnkit.train.lock import FileLock

    path = tmp_path / ".x.lock"
    a = FileLock(path)
    a.acquire()
    threading.Timer(0.2, a.release).start()
    t0 = time.monotonic()
    with FileLock(path).acquire(timeout=30):
        assert time.monotonic() - t0 >= 0.15


@pytest.mark.parametrize("errno_name", ["ENOLCK", "EOPNOTSUPP"])
def test_without_flock_a_pid_file_is_checked_for_liveness(tmp_path, monkeypatch, errno_name):
    """Where flock is unsupported (some network filesystems), a live holder's pid still locks."""
    import errno

    from rnnkit.train import lock as lk

    def no_flock(fd, op):
        raise OSError(getattr(errno, errno_name), "flock unsupported")

    monkeypatch.setattr(lk, "_flock", no_flock)
    path = tmp_path / ".x.lock"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        path.write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(lk.LockError, match=f"pid {live.pid}"):
            lk.FileLock(path).acquire(timeout=0)
    finally:
        _kill(live)
    # the holder died: its file is stale and is taken over
    with lk.FileLock(path) as lock:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        assert not lk.FileLock(path).try_acquire()  # ours now: a second taker sees us alive
        assert lock.held
    assert not path.exists()
