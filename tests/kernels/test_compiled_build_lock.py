"""Processes that need the compiled time loops at once wait for one build (compiled.build's lock).

Without the lock, two test workers (or DDP ranks) on a fresh machine each compiled the same
sources for a minute on the same cores: 130 s each in the parallel suite against 55 s for one.
These tests replace the compiler and the import with stand-ins: the lock and the re-check of
the cache after the wait are what is tested, not the C++ build (tests/kernels/test_compiled_*).
"""
from __future__ import annotations

import threading
import time

import pytest

from rnnkit.kernels import compiled

fcntl = pytest.importorskip("fcntl")  # the lock is flock; without it every process builds


def test_a_second_builder_waits_for_the_lock(tmp_path):
    entered = threading.Event()

    def second():
        with compiled._one_builder(tmp_path):
            entered.set()

    with compiled._one_builder(tmp_path):
        t = threading.Thread(target=second)
        t.start()
        assert not entered.wait(0.5), "a second builder went ahead while the first held the lock"
    assert entered.wait(10), "the second builder never got the lock after the first let go"
    t.join()


def test_build_after_the_wait_imports_what_the_other_process_built(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = tmp_path / "rnnkit" / "compiled-scans"
    root.mkdir(parents=True)
    final = root / f"rnnkit_scans_{compiled._key()}.so"
    builds, imports = [], []
    monkeypatch.setattr(compiled, "_build_into", lambda name, r, f: builds.append(f) or "built")
    monkeypatch.setattr(compiled, "_import", lambda name, path: imports.append(path) or "imported")

    result = []
    with compiled._one_builder(root):  # "another process" is building
        t = threading.Thread(target=lambda: result.append(compiled.build()))
        t.start()
        time.sleep(0.3)
        assert not result, "build() did not wait for the build in progress"
        final.write_bytes(b"")  # that build lands in the cache, then the lock is released
    t.join(10)
    assert result == ["imported"] and imports == [final] and builds == []


def test_build_with_nothing_in_the_cache_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    builds = []
    monkeypatch.setattr(compiled, "_build_into", lambda name, r, f: builds.append(f) or "built")
    assert compiled.build() == "built"
    assert [f.name for f in builds] == [f"rnnkit_scans_{compiled._key()}.so"]
    assert (tmp_path / "rnnkit" / "compiled-scans" / ".build.lock").exists()
