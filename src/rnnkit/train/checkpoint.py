"""Checkpoints: a directory of safetensors + JSON, published atomically, loaded without pickle.

Layout of one checkpoint directory::

    model.safetensors            model state_dict (tied weights stored once)
    config.json                  {"format", "rnnkit_version", "task", "config": full typed config}
    <task assets>                e.g. vocab.json (written by the task)
    trainer_state.safetensors    optimizer tensors, torch RNG state (uint8), carried state
    trainer_state.json           epoch, step, batch index, best metric, schedule state,
                                 optimizer scalars/param groups, python/numpy RNG, history

Integrity: each safetensors file carries the SHA-256 of its tensors (names, dtypes, shapes,
bytes) in its header metadata, and ``trainer_state.safetensors`` the SHA-256 of
``trainer_state.json``; readers check them, so a flipped bit is an error, not other weights.
(``config.json`` is left unbound: it is the file people edit, and its every value is typed
and checked when it is read.) Checkpoints written before these checks are read as before.

Publication, for ``<parent>/<name>`` (e.g. ``runs/x/last``), under the lock
``<parent>/.<name>.lock`` (:mod:`rnnkit.train.lock`)::

    .<name>.tmp-S/      written and fsynced file by file
    .<name>.new-S/      renamed from tmp-S when complete: the commit point
    <name> -> .<name>.old-S,  .<name>.new-S -> <name>,  .<name>.old-S -> .<name>.del-S, deleted

A ``.new-`` or ``.old-`` directory is always complete (only renames make them); ``.tmp-`` and
``.del-`` ones are garbage. Whatever call a writer dies at, the newest complete checkpoint is
``.<name>.new-S`` if there is one, else ``<name>``, else the newest ``.<name>.old-S``:
:func:`resolve_checkpoint` (which every reader calls) finishes the interrupted move and
deletes the garbage while holding the lock, so never under a live writer; a reader that
cannot take the lock (a read-only directory) reads the newest complete one where it is.
``tests/train/test_crash_points.py`` kills a save at each of its filesystem calls.

Nothing is ever unpickled: tensors come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from rnnkit.train.config import MAX_DEPTH, nesting_depth
from rnnkit.train.lock import FileLock

__all__ = [
    "CheckpointError",
    "FORMAT",
    "TENSORS_SHA256",
    "TRAINER_JSON_SHA256",
    "write_checkpoint",
    "resolve_checkpoint",
    "has_checkpoint",
    "read_config",
    "read_model_state",
    "read_trainer_state",
    "load_model_weights",
    "recover_interrupted",
    "flatten_tensors",
    "unflatten_tensors",
    "optimizer_to_flat",
    "optimizer_from_flat",
    "file_sha256",
]

FORMAT = "rnnkit.checkpoint"
_FORMAT_VERSION = 1
#: safetensors header key: SHA-256 of the file's tensors (see :func:`tensors_sha256`)
TENSORS_SHA256 = "rnnkit.tensors.sha256"
#: trainer_state.safetensors header key: SHA-256 of the bytes of trainer_state.json
TRAINER_JSON_SHA256 = "rnnkit.trainer_state.json.sha256"
#: deepest JSON nesting a checkpoint file may have (ours stay under 15)
MAX_JSON_DEPTH = MAX_DEPTH
#: how long a writer waits for another writer or a recovering reader of the same checkpoint
LOCK_TIMEOUT = 600.0


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, truncated, corrupted, of another task, or that
    could not be written (one-line message naming the file)."""


# --------------------------------------------------------------------------- nested tensors


def flatten_tensors(obj: Any, prefix: str, out: dict[str, Tensor]) -> Any:
    """Move the tensors of a nested (tuple/list/dict/None/scalar) structure into ``out``.

    Returns a JSON-able skeleton where each tensor is replaced by ``{"__tensor__": key}``.
    """
    if isinstance(obj, Tensor):
        out[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, (tuple, list)):
        items = [flatten_tensors(v, f"{prefix}.{i}", out) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        return {"__dict__": [[k, flatten_tensors(v, f"{prefix}.{k}", out)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def unflatten_tensors(
    skel: Any, tensors: dict[str, Tensor], where: str = "trainer_state.json"
) -> Any:
    """Inverse of :func:`flatten_tensors`; a malformed skeleton raises CheckpointError naming
    ``where``."""

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{where}: {what}")

    if isinstance(skel, dict):
        if len(skel) != 1:
            raise bad(f"unexpected object with keys {sorted(map(str, skel))[:5]}")
        (tag, value), = skel.items()
        if tag == "__tensor__":
            if not isinstance(value, str) or value not in tensors:
                raise bad(f"names tensor {value!r}, which trainer_state.safetensors lacks")
            return tensors[value]
        if tag == "__tuple__" and isinstance(value, list):
            return tuple(unflatten_tensors(v, tensors, where) for v in value)
        if tag == "__dict__" and isinstance(value, list):
            out = {}
            for item in value:
                if not (
                    isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))
                ):
                    raise bad(f"expected [key, value] pairs in a __dict__, got {item!r:.60}")
                out[item[0]] = unflatten_tensors(item[1], tensors, where)
            return out
        raise bad(f"unexpected object {{{tag!r}: ...}}")
    if isinstance(skel, list):
        return [unflatten_tensors(v, tensors, where) for v in skel]
    return skel


def optimizer_to_flat(state: dict[str, Any], out: dict[str, Tensor]) -> Any:
    """``optimizer.state_dict()`` -> JSON skeleton (integer state keys kept as ints)."""
    return {
        "state": [
            [int(i), flatten_tensors(s, f"optim.state.{i}", out)] for i, s in state["state"].items()
        ],
        "param_groups": flatten_tensors(state["param_groups"], "optim.groups", out),
    }


def optimizer_from_flat(
    skel: Any, tensors: dict[str, Tensor], where: str = "trainer_state.json"
) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_flat`: a dict for ``optimizer.load_state_dict``."""
    if not (
        isinstance(skel, dict) and isinstance(skel.get("state"), list) and "param_groups" in skel
    ):
        raise CheckpointError(
            f"{where}: field 'optimizer': expected an object with 'state' and 'param_groups'"
        )
    state = {}
    for item in skel["state"]:
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int):
            raise CheckpointError(
                f"{where}: field 'optimizer.state': expected [int, state] pairs, got {item!r:.60}"
            )
        state[item[0]] = unflatten_tensors(item[1], tensors, where)
    return {"state": state, "param_groups": unflatten_tensors(skel["param_groups"], tensors, where)}


# --------------------------------------------------------------------------- hashing


def tensors_sha256(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k]
        h.update(f"{k}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- writing


def _unique_state(model_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop aliases (tied weights) so safetensors accepts the dict; they are re-tied on load."""
    seen: dict[int, str] = {}
    out = {}
    for k, v in model_state.items():
        ptr = (
            (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
            if v.numel()
            else None
        )
        if ptr is not None and ptr in seen:
            continue
        if ptr is not None:
            seen[ptr] = k
        out[k] = v.detach().cpu().contiguous()
    return out


def _save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata={**metadata, TENSORS_SHA256: tensors_sha256(tensors)})


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=True) + "\n"


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


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror if not e.filename else f"{e.strerror}: {e.filename}"
    return " ".join(str(e).split())[:300]


def write_checkpoint(
    directory: str | os.PathLike,
    *,
    model_state: dict[str, Tensor],
    config: dict[str, Any],
    task: str,
    version: str,
    trainer_tensors: dict[str, Tensor] | None = None,
    trainer_json: dict[str, Any] | None = None,
    write_assets: Callable[[Path], None] | None = None,
) -> Path:
    """Write a checkpoint directory, publish it atomically and return its path.

    Args:
        directory: final path (e.g. ``runs/x/last``); replaced if it exists.
        model_state: ``model.state_dict()``.
        config: the full run config as plain data.
        task: task name recorded in config.json (loading checks it).
        version: rnnkit version.
        trainer_tensors / trainer_json: resume state; omitted for a model-only checkpoint.
        write_assets: called with the temporary directory to add task files (vocab.json).

    Raises:
        CheckpointError: the disk is full, a file cannot be written, ...: the previous
            checkpoint stays where it was (or, past the commit point, the new one is
            moved into place by the next reader).
    """
    final = Path(directory)
    committed = False
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(final).acquire(timeout=LOCK_TIMEOUT)
        try:
            _recover(final)  # a killed writer's work: finish its move, delete its garbage
            new = _write_new(
                final,
                model_state,
                config,
                task,
                version,
                trainer_tensors,
                trainer_json,
                write_assets,
            )
            committed = True
            _publish(final, new)
        finally:
            lock.release()
    except (OSError, SafetensorError) as e:
        if committed:
            raise CheckpointError(
                f"{final}: the checkpoint was written but not moved into place "
                f"({_reason(e)}); the next reader or save completes the move"
            ) from None
        raise CheckpointError(f"{final}: could not write the checkpoint ({_reason(e)}); "
                              f"the previous checkpoint, if any, is kept") from None
    return final


def _write_new(final: Path, model_state, config, task, version, trainer_tensors, trainer_json,
               write_assets) -> Path:
    """Write every file into ``.<name>.tmp-S``, fsync them, and rename it ``.<name>.new-S``."""
    stamp = _stamp()
    tmp = final.parent / f".{final.name}.tmp-{stamp}"
    os.mkdir(tmp)
    try:
        _save_tensors(
            tmp / "model.safetensors", _unique_state(model_state), {"format": FORMAT, "task": task}
        )
        _write_text(
            tmp / "config.json",
            _json_text(
                {
                    "format": FORMAT,
                    "format_version": _FORMAT_VERSION,
                    "rnnkit_version": version,
                    "task": task,
                    "config": config,
                }
            ),
        )
        if write_assets is not None:
            write_assets(tmp)
        if trainer_json is not None:
            text = _json_text(trainer_json)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            _save_tensors(
                tmp / "trainer_state.safetensors",
                trainer_tensors or {},
                {TRAINER_JSON_SHA256: digest},
            )
            _write_text(tmp / "trainer_state.json", text)
        for f in sorted(tmp.iterdir()):
            _fsync(f)
        _fsync(tmp, directory=True)
        new = final.parent / f".{final.name}.new-{stamp}"
        os.rename(tmp, new)
    except BaseException:
        _remove(tmp)
        raise
    _fsync(final.parent, directory=True)
    return new


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


# --------------------------------------------------------------------------- reading


def _parse_json(path: Path, raw: bytes) -> Any:
    too_deep = CheckpointError(
        f"{path}: JSON nested too deeply (at most {MAX_JSON_DEPTH} levels expected)"
    )
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: corrupted (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}:{e.colno}: corrupted JSON ({e.msg})") from None
    except RecursionError:
        raise too_deep from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise CheckpointError(
            f"{path}: corrupted JSON ({' '.join(str(e).split())[:200]})"
        ) from None
    if nesting_depth(obj) > MAX_JSON_DEPTH:
        raise too_deep
    return obj


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: not a checkpoint ({path.name} is missing)")
    try:
        return path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({_reason(e)})") from None


def _read_json(path: Path) -> Any:
    return _parse_json(path, _read_bytes(path))


def read_config(directory: str | os.PathLike, task: str | None = None) -> dict[str, Any]:
    """Read and check ``config.json``; with ``task`` given, reject another task's checkpoint."""
    d = Path(directory)
    if not d.exists() and not has_checkpoint(d):
        raise CheckpointError(f"{d}: checkpoint directory not found")
    d = resolve_checkpoint(d)
    if not d.is_dir():
        raise CheckpointError(
            f"{d}: expected a checkpoint directory (with model.safetensors and config.json)"
        )
    meta = _read_json(d / "config.json")
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or not isinstance(meta.get("config"), dict)
    ):
        raise CheckpointError(
            f"{d / 'config.json'}: not an rnnkit checkpoint config (format {FORMAT!r} expected)"
        )
    if task is not None and meta.get("task") != task:
        raise CheckpointError(
            f"{d}: checkpoint is from task {meta.get('task')!r}; expected a {task!r} checkpoint"
        )
    return meta


def _load_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file, its checksum verified if it has one."""
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: not a complete checkpoint ({path.name} is missing)")
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{path}: truncated or corrupted safetensors file ({_reason(e)})"
        ) from None
    want = meta.get(TENSORS_SHA256)
    if want is not None and tensors_sha256(tensors) != want:
        raise CheckpointError(
            f"{path}: its tensors do not match the checksum in its header (corrupted or edited)"
        )
    return tensors, meta


def read_model_state(directory: str | os.PathLike) -> dict[str, Tensor]:
    """Tensors of ``model.safetensors`` (use ``load_state_dict(strict=False)`` for tied weights)."""
    return _load_safetensors(resolve_checkpoint(directory) / "model.safetensors")[0]


def read_trainer_state(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(trainer_state.json, trainer_state.safetensors tensors)`` of a resumable checkpoint.

    The JSON is checked for syntax, nesting and its SHA-256 (recorded in the safetensors
    header), not for its fields: :func:`rnnkit.train.state.check_trainer_state` does that.
    """
    d = resolve_checkpoint(directory)
    path = d / "trainer_state.json"
    raw = _read_bytes(path)
    meta = _parse_json(path, raw)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupted (expected a JSON object)")
    tensors, header = _load_safetensors(d / "trainer_state.safetensors")
    want = header.get(TRAINER_JSON_SHA256)
    if want is not None and hashlib.sha256(raw).hexdigest() != want:
        raise CheckpointError(
            f"{path}: does not match trainer_state.safetensors (edited or corrupted)"
        )
    return meta, tensors


def load_model_weights(model: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Load ``model.safetensors`` into ``model``; every saved and every unaliased key must match."""
    d = resolve_checkpoint(directory)
    state = read_model_state(d)
    expected = _unique_state(model.state_dict())
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(model.state_dict()))
    if missing or unexpected:
        raise CheckpointError(
            f"{d / 'model.safetensors'}: parameters do not match the model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for k, v in state.items():
        ref = model.state_dict()[k]
        if tuple(v.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{d / 'model.safetensors'}: {k} has shape {tuple(v.shape)}, the model expects "
                f"{tuple(ref.shape)}"
            )
    model.load_state_dict(state, strict=False)
