"""Reading a checkpoint back, verified: its config, model weights and trainer state.

Every reader first resolves the directory (:func:`~rnnkit.train.checkpoint_dirs.resolve_checkpoint`
finishes a killed save), then checks what it reads: JSON syntax and nesting, the format
name and version, the tensors' checksums, the SHA-256 of each task asset (vocab.json,
labels.json, ...) that config.json records, and for the trainer state the SHA-256 of
``trainer_state.json``. Every problem is a one-line :class:`CheckpointError` naming the
file. Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from rnnkit.train.checkpoint_dirs import has_checkpoint, resolve_checkpoint
from rnnkit.train.checkpoint_format import (
    ASSETS_REQUIRED_FROM,
    ASSETS_SHA256,
    FORMAT,
    FORMAT_VERSIONS,
    TENSORS_SHA256,
    TRAINER_JSON_SHA256,
    CheckpointError,
    _reason,
    _unique_state,
    file_sha256,
    tensors_sha256,
)
from rnnkit.train.config import (
    MAX_DEPTH,
    ConfigError,
    RunConfig,
    checkpoint_run_config,
    nesting_depth,
)

__all__ = ["read_config", "read_run_config", "read_model_state", "read_trainer_state",
           "load_model_weights"]

#: deepest JSON nesting a checkpoint file may have (ours stay under 15)
MAX_JSON_DEPTH = MAX_DEPTH


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
    version = _check_header(d / "config.json", meta)
    if task is not None and meta.get("task") != task:
        raise CheckpointError(
            f"{d}: checkpoint is from task {meta.get('task')!r}; expected a {task!r} checkpoint"
        )
    _check_assets(d, meta, version)
    return meta


def _check_header(path: Path, meta: dict[str, Any]) -> int:
    """The fields of config.json around the run config: ``format_version`` (returned) and
    ``task`` (absent in early checkpoints, then read as version 1 of an unnamed task)."""
    version = meta.get("format_version", 1)
    if type(version) is not int or version not in FORMAT_VERSIONS:
        raise CheckpointError(
            f"{path}: field 'format_version': expected one of "
            f"{', '.join(map(str, FORMAT_VERSIONS))} (the checkpoint formats this rnnkit "
            f"reads), got {json.dumps(version)[:40]}"
        )
    name = meta.get("task")
    if name is not None and not (isinstance(name, str) and name):
        raise CheckpointError(
            f"{path}: field 'task': expected a task name (a string such as \"lm\"), got "
            f"{json.dumps(name)[:40]}"
        )
    return version


def _check_assets(d: Path, meta: dict[str, Any], version: int) -> None:
    """Each asset whose SHA-256 config.json records must have those bytes. From format
    :data:`ASSETS_REQUIRED_FROM` on the record must be there (deleting it would turn the check
    off); format 1 checkpoints written before the hashes existed have none to check."""
    where = d / "config.json"
    if ASSETS_SHA256 not in meta:
        if version < ASSETS_REQUIRED_FROM:
            return
        raise CheckpointError(
            f"{where}: field {ASSETS_SHA256!r} is missing; expected an object of file name -> "
            f"SHA-256 (every format_version {version} checkpoint records its assets' hashes)"
        )
    recorded = meta[ASSETS_SHA256]
    if recorded is None and version < ASSETS_REQUIRED_FROM:
        return
    if not isinstance(recorded, dict):
        raise CheckpointError(
            f"{where}: field {ASSETS_SHA256!r}: expected an object of file name -> SHA-256, "
            f"got {json.dumps(recorded)[:40]}"
        )
    for name, digest in recorded.items():
        if not (isinstance(digest, str) and len(digest) == 64 and all(
                c in "0123456789abcdefABCDEF" for c in digest)) or not _inside(name):
            raise CheckpointError(
                f"{where}: field '{ASSETS_SHA256}.{name}': expected the 64-hex-digit SHA-256 "
                f"of a file in the checkpoint, got {json.dumps(digest)[:70]}"
            )
        path = d / name
        if not path.is_file():
            raise CheckpointError(f"{d}: not a complete checkpoint ({name} is missing)")
        try:
            ok = file_sha256(path) == digest.lower()
        except OSError as e:
            raise CheckpointError(f"{path}: cannot be read ({_reason(e)})") from None
        if not ok:
            raise CheckpointError(
                f"{path}: does not match the SHA-256 recorded in config.json "
                f"(edited or corrupted); restore the file the checkpoint was saved with"
            )


def _inside(name: str) -> bool:
    """``name`` is a relative path that stays inside the checkpoint (no ``..``, not absolute)."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


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


def read_run_config(directory: str | Path,
                    task: str | None = None) -> tuple[dict[str, Any], RunConfig]:
    """``(config.json's mapping, its RunConfig)`` of a checkpoint: :func:`read_config`, then
    :func:`~rnnkit.train.config.checkpoint_run_config` (typed, without the training ranges);
    an invalid config is a :class:`CheckpointError` naming ``config.json``."""
    meta = read_config(directory, task=task)
    try:
        return meta, checkpoint_run_config(meta["config"])
    except ConfigError as e:
        raise CheckpointError(f"{Path(directory) / 'config.json'}: invalid config ({e})") from None


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
