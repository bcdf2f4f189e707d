"""Checkpoints: a directory of safetensors + JSON, written atomically, loaded without pickle.

Layout of one checkpoint directory::

    model.safetensors            model state_dict (tied weights stored once)
    config.json                  {"format", "rnnkit_version", "task", "config": full typed config}
    <task assets>                e.g. vocab.json (written by the task)
    trainer_state.safetensors    optimizer tensors, torch RNG state (uint8), carried state
    trainer_state.json           epoch, step, batch index, best metric, schedule state,
                                 optimizer scalars/param groups, python/numpy RNG, history

A checkpoint is written into ``<parent>/.<name>.tmp-XXXX/`` and moved into place with
``os.replace`` (the previous one is first moved aside and deleted afterwards), so a process
killed at any moment leaves either the old or the new checkpoint, never a half-written one.
Nothing is ever unpickled: tensors come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

__all__ = [
    "CheckpointError",
    "FORMAT",
    "write_checkpoint",
    "read_config",
    "read_model_state",
    "read_trainer_state",
    "load_model_weights",
    "recover_interrupted",
    "flatten_tensors",
    "unflatten_tensors",
    "optimizer_to_flat",
    "optimizer_from_flat",
]

FORMAT = "rnnkit.checkpoint"
_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, truncated, corrupted or of another task."""


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


def unflatten_tensors(skel: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`flatten_tensors`."""
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            key = skel["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"trainer_state.safetensors lacks tensor {key!r}")
            return tensors[key]
        if "__tuple__" in skel:
            return tuple(unflatten_tensors(v, tensors) for v in skel["__tuple__"])
        if "__dict__" in skel:
            return {k: unflatten_tensors(v, tensors) for k, v in skel["__dict__"]}
        raise CheckpointError(f"trainer_state.json: unexpected object {sorted(skel)}")
    if isinstance(skel, list):
        return [unflatten_tensors(v, tensors) for v in skel]
    return skel


def optimizer_to_flat(state: dict[str, Any], out: dict[str, Tensor]) -> Any:
    """``optimizer.state_dict()`` -> JSON skeleton (integer state keys kept as ints)."""
    return {
        "state": [[int(i), flatten_tensors(s, f"optim.state.{i}", out)] for i, s in state["state"].items()],
        "param_groups": flatten_tensors(state["param_groups"], "optim.groups", out),
    }


def optimizer_from_flat(skel: Any, tensors: dict[str, Tensor]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_flat`: a dict for ``optimizer.load_state_dict``."""
    return {
        "state": {int(i): unflatten_tensors(s, tensors) for i, s in skel["state"]},
        "param_groups": unflatten_tensors(skel["param_groups"], tensors),
    }


# --------------------------------------------------------------------------- writing


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _unique_state(model_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop aliases (tied weights) so safetensors accepts the dict; they are re-tied on load."""
    seen: dict[int, str] = {}
    out = {}
    for k, v in model_state.items():
        ptr = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)) if v.numel() else None
        if ptr is not None and ptr in seen:
            continue
        if ptr is not None:
            seen[ptr] = k
        out[k] = v.detach().cpu().contiguous()
    return out


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
    """Write a checkpoint directory atomically and return its path.

    Args:
        directory: final path (e.g. ``runs/x/last``); replaced if it exists.
        model_state: ``model.state_dict()``.
        config: the full run config as plain data.
        task: task name recorded in config.json (loading checks it).
        version: rnnkit version.
        trainer_tensors / trainer_json: resume state; omitted for a model-only checkpoint.
        write_assets: called with the temporary directory to add task files (vocab.json).
    """
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; a checkpoint is ordinary data
        save_file(_unique_state(model_state), str(tmp / "model.safetensors"),
                  metadata={"format": FORMAT, "task": task})
        _write_json(tmp / "config.json", {"format": FORMAT, "format_version": _FORMAT_VERSION,
                                          "rnnkit_version": version, "task": task, "config": config})
        if write_assets is not None:
            write_assets(tmp)
        if trainer_json is not None:
            save_file({k: v.contiguous() for k, v in (trainer_tensors or {}).items()},
                      str(tmp / "trainer_state.safetensors"))
            _write_json(tmp / "trainer_state.json", trainer_json)
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~umask)
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def recover_interrupted(directory: str | os.PathLike) -> None:
    """If a kill struck between moving ``directory`` aside and moving the new one in,
    put the old one back; remove leftover temporary directories."""
    final = Path(directory)
    parent = final.parent
    if not parent.is_dir():
        return
    olds = sorted(parent.glob(f".{final.name}.old-*"))
    if not final.exists() and olds:
        os.replace(olds[-1], final)
        olds = olds[:-1]
    for p in olds + list(parent.glob(f".{final.name}.tmp-*")):
        shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------- reading


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: not a checkpoint ({path.name} is missing)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: corrupted (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}:{e.colno}: corrupted JSON ({e.msg})") from None


def read_config(directory: str | os.PathLike, task: str | None = None) -> dict[str, Any]:
    """Read and check ``config.json``; with ``task`` given, reject another task's checkpoint."""
    d = Path(directory)
    if not d.exists():
        raise CheckpointError(f"{d}: checkpoint directory not found")
    if not d.is_dir():
        raise CheckpointError(f"{d}: expected a checkpoint directory (with model.safetensors and config.json)")
    meta = _read_json(d / "config.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{d / 'config.json'}: not an rnnkit checkpoint config (format {FORMAT!r} expected)")
    if task is not None and meta.get("task") != task:
        raise CheckpointError(f"{d}: checkpoint is from task {meta.get('task')!r}; expected a {task!r} checkpoint")
    return meta


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: not a complete checkpoint ({path.name} is missing)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        msg = " ".join(str(e).split())
        raise CheckpointError(f"{path}: truncated or corrupted safetensors file ({msg})") from None


def read_model_state(directory: str | os.PathLike) -> dict[str, Tensor]:
    """Tensors of ``model.safetensors`` (use ``load_state_dict(strict=False)`` for tied weights)."""
    return _load_safetensors(Path(directory) / "model.safetensors")


def read_trainer_state(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(trainer_state.json, trainer_state.safetensors tensors)`` of a resumable checkpoint."""
    d = Path(directory)
    meta = _read_json(d / "trainer_state.json")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{d / 'trainer_state.json'}: corrupted (expected a JSON object)")
    return meta, _load_safetensors(d / "trainer_state.safetensors")


def load_model_weights(model: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Load ``model.safetensors`` into ``model``; every saved and every unaliased key must match."""
    d = Path(directory)
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
                f"{d / 'model.safetensors'}: {k} has shape {tuple(v.shape)}, the model expects {tuple(ref.shape)}"
            )
    model.load_state_dict(state, strict=False)

