"""Crash points of a checkpoint save (issue 19, item 6 and the fuzzing harness).

``Faults`` counts the filesystem calls a save makes (``os.rename``/``replace``/``mkdir``/
``open``/``write``/``fsync``/``unlink``, ``shutil.rmtree``, ``open`` and each file's
``write``/``flush``, safetensors' ``save_file``, the lock's ``flock``) and fails the k-th:

- **kill**: the k-th call and every later one raise ``Killed`` (a BaseException), so the
  writer's own clean-up cannot run either: the directory is left as a SIGKILL at that call
  would leave it;
- **error**: only the k-th call fails, with ENOSPC, and the writer handles it.

For every k, a reader afterwards must find a complete checkpoint, the previous one or the
new one, whose weights, trainer state and assets all belong to the same save; and the stale
temporaries must be gone. A second kill, during the recovery that follows the first, must
not lose it either.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
import threading

import pytest
import torch

from rnnkit.models.lm import LanguageModel, LMConfig
from rnnkit.train import checkpoint as ck

try:
    from rnnkit.train import lock as lk
except ImportError:  # before the lock existed
    lk = None


class Killed(BaseException):
    """The simulated death of the process at a filesystem call."""


class Faults:
    """Patch the filesystem calls of a save; fail the ``k``-th (``k=0``: only count them)."""

    def __init__(self, k: int = 0, kill: bool = True):
        self.k, self.kill, self.n, self.dead, self.calls = k, kill, 0, False, []
        monkeypatch = pytest.MonkeyPatch()  # its own: stop() must undo only these
        targets = [(os, "rename"), (os, "replace"), (os, "mkdir"), (os, "open"), (os, "write"),
                   (os, "fsync"), (os, "ftruncate"), (os, "unlink"), (os, "rmdir"),
                   (shutil, "rmtree"), (ck, "save_file")]
        if lk is not None and hasattr(lk, "_flock"):
            targets.append((lk, "_flock"))
        for mod, name in targets:
            monkeypatch.setattr(mod, name, self._wrap(name, getattr(mod, name)))
        real_open = builtins.open
        monkeypatch.setattr(builtins, "open", self._wrap_open(real_open))
        self.monkeypatch = monkeypatch

    def hit(self, name: str) -> None:
        self.n += 1
        self.calls.append(name)
        if self.dead or self.n == self.k:
            if self.kill:
                self.dead = True
                raise Killed(f"killed at call {self.n} ({name})")
            raise OSError(errno.ENOSPC, f"No space left on device (injected at call {self.n}, {name})")

    def _wrap(self, name, fn):
        def call(*a, **k):
            if name == "save_file" and (self.dead or self.n + 1 == self.k):
                path = a[1] if len(a) > 1 else k["filename"]
                with builtins.open.__wrapped__(path, "wb") as f:  # a partial file, as a kill leaves it
                    f.write(b"\x08\x00\x00\x00\x00\x00\x00\x00{")
            self.hit(f"{name} -> {os.path.basename(str(a[1]))}" if name in ("rename", "replace") else name)
            return fn(*a, **k)

        return call

    def _wrap_open(self, real_open):
        faults = self

        class File:
            def __init__(self, f):
                self._f = f

            def write(self, data):
                faults.hit("file.write")
                return self._f.write(data)

            def flush(self):
                faults.hit("file.flush")
                return self._f.flush()

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._f.close()

            def __getattr__(self, name):
                return getattr(self._f, name)

        def fake_open(file, mode="r", *a, **k):
            if not any(c in mode for c in "wax+"):
                return real_open(file, mode, *a, **k)
            faults.hit("open")
            return File(real_open(file, mode, *a, **k))

        fake_open.__wrapped__ = real_open
        return fake_open

    def stop(self) -> None:
        self.monkeypatch.undo()


# --------------------------------------------------------------------------- checkpoints


@pytest.fixture(autouse=True)
def _no_disk_flush(monkeypatch):
    """fsync is still a fault point, but flushes nothing: a kill, unlike a power cut, keeps
    what the OS has cached, and real flushes would make the hundreds of saves slow."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


_CONFIG = LMConfig(embedding_size=4, hidden_size=4, num_layers=1, tie_weights=True)
_STATES: dict[int, dict] = {}


def _model(step: int) -> LanguageModel:
    """The model of checkpoint ``step`` (its weights drawn once from seed ``step``)."""
    m = LanguageModel(_CONFIG, 7)
    if step not in _STATES:
        g = torch.Generator().manual_seed(step)
        m.load_state_dict({k: torch.randn(v.shape, generator=g) for k, v in m.state_dict().items()})
        _STATES[step] = {k: v.clone() for k, v in m.state_dict().items()}  # tied: one of the two won
    m.load_state_dict(_STATES[step])
    return m


def _write(d, step: int, state: bool = True):
    """Checkpoint number ``step``: weights, config, an asset and trainer state all say ``step``."""

    def asset(tmp):
        with open(tmp / "vocab.json", "w") as f:
            f.write(json.dumps({"step": step}))

    return ck.write_checkpoint(
        d, model_state=_model(step).state_dict(), config={"step": step}, task="lm", version="0",
        trainer_tensors={"opt.m": torch.full((3,), float(step))} if state else None,
        trainer_json={"step": step} if state else None, write_assets=asset)


def _read(d, state: bool = True) -> int:
    """The step of the complete checkpoint a reader finds at ``d``, checked file by file."""
    step = ck.read_config(d, task="lm")["config"]["step"]
    m = LanguageModel(_CONFIG, 7)
    ck.load_model_weights(m, d)
    _model(step)
    for k, v in m.state_dict().items():
        assert torch.equal(v, _STATES[step][k]), f"{k} is not checkpoint {step}'s"
    where = _resolve(d)
    assert json.loads((where / "vocab.json").read_text()) == {"step": step}
    if state:
        meta, t = ck.read_trainer_state(d)
        assert meta == {"step": step} and torch.equal(t["opt.m"], torch.full((3,), float(step)))
    return step


def _resolve(d):
    return ck.resolve_checkpoint(d) if hasattr(ck, "resolve_checkpoint") else d


def _recover(d):
    if hasattr(ck, "resolve_checkpoint"):
        ck.resolve_checkpoint(d)
    else:
        ck.recover_interrupted(d)


def _listing(parent):
    return sorted(p.name for p in parent.iterdir())


def _count(monkeypatch, fn) -> list[str]:
    f = Faults()
    try:
        fn()
    finally:
        f.stop()
    return f.calls


def _fail_at(monkeypatch, k: int, kill: bool, fn) -> BaseException | None:
    """Run ``fn`` with the ``k``-th call failed; the exception it raised (None if none)."""
    f = Faults(k, kill)
    try:
        fn()
    except (Killed, ck.CheckpointError) as e:
        return e
    finally:
        f.stop()
    return None


# --------------------------------------------------------------------------- item 6


def test_kill_between_the_two_renames_keeps_best(tmp_path, monkeypatch):
    """The issue's window: the old ``best/`` moved aside, the new one not yet moved in."""
    best = tmp_path / "best"
    _write(best, 1, state=False)
    real_replace, real_rename = os.replace, os.rename

    def move(real):
        def call(src, dst, *a, **k):
            if os.path.basename(str(dst)) == "best" and ".best." in os.path.basename(str(src)):
                raise Killed("between the renames")
            return real(src, dst, *a, **k)

        return call

    monkeypatch.setattr(os, "replace", move(real_replace))
    monkeypatch.setattr(os, "rename", move(real_rename))
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: (_ for _ in ()).throw(Killed("dead")))
    with pytest.raises(Killed):
        _write(best, 2, state=False)
    monkeypatch.undo()
    assert not best.exists()  # the window is real
    assert _read(best, state=False) in (1, 2)  # a plain reader finds a complete one
    assert _listing(tmp_path) == ["best"]


def test_stale_temporaries_are_removed_by_the_next_writer(tmp_path):
    last = tmp_path / "last"
    _write(last, 1)
    # what killed writers leave, in the names of this version and of the one before
    for name in (".last.tmp-abc123", ".last.tmp-00000000000000000001-99", ".last.old-4242",
                 ".last.del-00000000000000000001-99"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"partial")
    _write(last, 2)
    assert _listing(tmp_path) == ["last"]
    assert _read(last) == 2


def test_stale_temporaries_are_removed_by_a_reader(tmp_path):
    last = tmp_path / "last"
    _write(last, 1)
    (tmp_path / ".last.tmp-abc123").mkdir()
    (tmp_path / ".last.old-4242").mkdir()
    assert _read(last) == 1
    assert _listing(tmp_path) == ["last"]


def test_cleanup_spares_a_running_writer(tmp_path):
    """A reader's clean-up must not delete the temporary directory of a save in progress."""
    last = tmp_path / "last"
    _write(last, 1)
    inside, go = threading.Event(), threading.Event()
    errors = []

    def slow_asset_writer():
        def asset(tmp):
            inside.set()
            assert go.wait(60)
            (tmp / "vocab.json").write_text(json.dumps({"step": 2}))

        try:
            ck.write_checkpoint(last, model_state=_model(2).state_dict(), config={"step": 2}, task="lm",
                                version="0", trainer_tensors={"opt.m": torch.full((3,), 2.0)},
                                trainer_json={"step": 2}, write_assets=asset)
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=slow_asset_writer)
    t.start()
    try:
        assert inside.wait(60)
        _recover(last)
        assert _read(last) == 1
        assert any(".last.tmp-" in n for n in _listing(tmp_path))  # still there
    finally:
        go.set()
        t.join(60)
    assert not errors, errors
    assert _read(last) == 2 and _listing(tmp_path) == ["last"]


def test_read_only_reader_finds_the_newest_without_changing_anything(tmp_path, monkeypatch):
    """Where the reader cannot lock (a read-only directory), it reads the newest complete save."""
    last = tmp_path / "last"
    _write(last, 1)
    probe = tmp_path / "probe" / "last"
    _write(probe, 1)
    calls = _count(monkeypatch, lambda: _write(probe, 2))
    shutil.rmtree(tmp_path / "probe")
    # kill just before the new checkpoint moves in: previous moved aside, the new one complete
    k = next(i for i, c in enumerate(calls, 1) if c in ("rename -> last", "replace -> last"))
    _fail_at(monkeypatch, k, True, lambda: _write(last, 2))
    before = _listing(tmp_path)
    assert "last" not in before

    def refuse(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.path))

    monkeypatch.setattr(lk.FileLock, "try_acquire", refuse)
    monkeypatch.setattr(lk.FileLock, "acquire", refuse)
    assert _read(last) == 2
    assert _listing(tmp_path) == before


# --------------------------------------------------------------------------- every crash point


def _signature(parent):
    """The shape of a directory left by a kill: entry kinds and their files, stamps dropped."""
    out = []
    for p in sorted(parent.iterdir()):
        kind = p.name.split("-")[0]
        garbage = kind.endswith((".tmp", ".del"))  # any partial content is the same to a reader
        files = sorted(f.name for f in p.iterdir()) if p.is_dir() and not garbage else []
        out.append((kind, tuple(files)))
    return tuple(sorted(set(out)))


@pytest.mark.parametrize("kill", [True, False], ids=["kill", "error"])
def test_every_crash_point_of_a_save(tmp_path, monkeypatch, kill):
    """A save failed at each of its filesystem calls in turn leaves a readable checkpoint."""
    _write(tmp_path / "probe" / "last", 1)
    calls = _count(monkeypatch, lambda: _write(tmp_path / "probe" / "last", 2))
    shutil.rmtree(tmp_path / "probe")
    assert len(calls) >= 20, calls
    states = {}
    for k in range(1, len(calls) + 2):
        parent = tmp_path / f"k{k}"
        last = parent / "last"
        _write(last, 1)
        e = _fail_at(monkeypatch, k, kill, lambda: _write(last, 2))
        if not kill and e is not None:  # a failed save says so in one line, naming the directory
            assert isinstance(e, ck.CheckpointError) and str(last) in str(e) and "\n" not in str(e), e
        states.setdefault(_signature(parent), parent)
        copy = tmp_path / f"k{k}-copy"
        shutil.copytree(parent, copy)
        got = _read(last)
        assert got in (1, 2), (k, calls[k - 1] if k <= len(calls) else None)
        if k > len(calls):
            assert got == 2  # not failed at all
        assert _listing(parent) == ["last"], (k, _listing(parent))
        _write(last, 3)
        assert _read(last) == 3 and _listing(parent) == ["last"]
        shutil.rmtree(parent)
        copy.rename(parent)
    print(f"{'kill' if kill else 'error'}: {len(calls)} fault points, {len(states)} distinct states left")
    if kill:
        _second_kill(tmp_path, monkeypatch, list(states.values()))


def _second_kill(tmp_path, monkeypatch, states):
    """Each distinct state a kill leaves, killed again at each call of the recovery that a
    reader or the next writer makes: still 1, 2 (or the third save) afterwards."""
    n = 0
    for i, state in enumerate(states):
        for who in ("reader", "writer"):
            probe = tmp_path / f"probe-{i}-{who}"
            shutil.copytree(state, probe)
            act = (lambda d: _recover(d)) if who == "reader" else (lambda d: _write(d, 3))
            calls = _count(monkeypatch, lambda: act(probe / "last"))
            shutil.rmtree(probe)
            for k in range(1, len(calls) + 1):
                again = tmp_path / f"again-{i}-{who}-{k}"
                shutil.copytree(state, again)
                _fail_at(monkeypatch, k, True, lambda: act(again / "last"))
                assert _read(again / "last") in ((1, 2) if who == "reader" else (1, 2, 3)), (i, who, k)
                assert _listing(again) == ["last"]
                shutil.rmtree(again)
                n += 1
    print(f"second kills: {n} fault points of the recovery, in {len(states)} states")
    assert n > 0
