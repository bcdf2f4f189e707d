"""Processes that need the compiled time loops at once wait for one build (compiled.build's lock).

Without the lock, two test workers (or DDP ranks) on a fresh machine each compiled the same
sources for a minute on the same cores: 130 s each in the parallel suite against 55 s for one.
These tests replace the compiler and the import with stand-ins: the lock and the re-check of
the cache after the wait are what is tested, not the C++ build (tests/kernels/test_compiled_*).
Each waits for the event "the other builder found the lock taken" rather than for a time, so a
slow machine cannot make them pass without the lock.
"""
from __future__ import annotations

import logging
import threading

import pytest

from rnnkit.kernels import compiled

fcntl = pytest.importorskip("fcntl")  # the lock is flock; without it every process builds


@pytest.fixture
def refused(monkeypatch):
    """An event set each time a non-blocking flock finds the lock taken."""
    event, real = threading.Event(), fcntl.flock

    def flock(fd, op):
        try:
            return real(fd, op)
        except BlockingIOError:
            event.set()
            raise

    monkeypatch.setattr(fcntl, "flock", flock)
    return event


def test_a_second_builder_waits_for_the_lock(tmp_path, refused):
    entered = threading.Event()

    def second():
        with compiled._one_builder(tmp_path):
            entered.set()

    with compiled._one_builder(tmp_path):
        t = threading.Thread(target=second)
        t.start()
        assert refused.wait(10), "the second builder never tried the lock"
        assert not entered.is_set(), "a second builder went ahead while the first held the lock"
    assert entered.wait(10), "the second builder never got the lock after the first let go"
    t.join()


def test_build_after_the_wait_imports_what_the_other_process_built(tmp_path, monkeypatch,
                                                                   refused):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(compiled, "_key", lambda: "k")
    root = tmp_path / "rnnkit" / "compiled-scans"
    root.mkdir(parents=True)
    final = root / "rnnkit_scans_k.so"
    builds, imports = [], []
    monkeypatch.setattr(compiled, "_build_into", lambda name, r, f: builds.append(f) or "built")
    monkeypatch.setattr(compiled, "_import", lambda name, path: imports.append(path) or "imported")

    result = []
    with compiled._one_builder(root):  # "another process" is building
        t = threading.Thread(target=lambda: result.append(compiled.build()))
        t.start()
        assert refused.wait(10), "build() never tried the lock"
        assert not result, "build() did not wait for the build in progress"
        final.write_bytes(b"")  # that build lands in the cache, then the lock is released
    t.join(10)
    assert result == ["imported"] and imports == [final] and builds == []


def test_build_with_nothing_in_the_cache_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(compiled, "_key", lambda: "k")
    builds = []
    monkeypatch.setattr(compiled, "_build_into", lambda name, r, f: builds.append(f) or "built")
    assert compiled.build() == "built"
    assert [f.name for f in builds] == ["rnnkit_scans_k.so"]
    assert (tmp_path / "rnnkit" / "compiled-scans" / ".build.lock").exists()


def test_a_builder_held_past_the_wait_limit_is_not_waited_for(tmp_path, refused, caplog):
    """A stopped or hung builder must not hold every later process forever."""
    entered = threading.Event()

    def second():
        with compiled._one_builder(tmp_path, wait_s=0.5):
            entered.set()

    with caplog.at_level(logging.WARNING, logger="rnnkit.kernels.compiled"):
        with compiled._one_builder(tmp_path):
            t = threading.Thread(target=second)
            t.start()
            assert refused.wait(10)
            assert entered.wait(10), "the second builder waited past its limit"
        t.join()
    assert any("build lock" in r.getMessage() for r in caplog.records)
