"""What a checkpoint's files hold: format names, checksums and nested-tensor skeletons.

The names written into ``config.json`` and the safetensors headers, :class:`CheckpointError`,
the SHA-256 of a file's tensors (:func:`tensors_sha256`), and the JSON skeletons that let
nested state (optimizer state, carried hidden state) travel as safetensors + JSON without
pickle (:func:`flatten_tensors` and its inverse). Shared by the writer
(:mod:`rnnkit.train.checkpoint`) and the readers (:mod:`rnnkit.train.checkpoint_read`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "CheckpointError",
    "FORMAT",
    "TENSORS_SHA256",
    "TRAINER_JSON_SHA256",
    "flatten_tensors",
    "unflatten_tensors",
    "optimizer_to_flat",
    "optimizer_from_flat",
    "tensors_sha256",
    "file_sha256",
    "ASSETS_SHA256",
    "ASSETS_REQUIRED_FROM",
    "FORMAT_VERSIONS",
    "OWN_FILES",
    "assets_sha256",
]

FORMAT = "rnnkit.checkpoint"
#: the ``format_version`` this rnnkit writes: 2 = config.json always records
#: :data:`ASSETS_SHA256`; 1 (or no field) = it may not (written before the hashes existed)
_FORMAT_VERSION = 2
#: the ``format_version`` values of config.json that this rnnkit reads
FORMAT_VERSIONS = (1, 2)
#: the first format whose config.json must hold :data:`ASSETS_SHA256`
ASSETS_REQUIRED_FROM = 2
#: config.json key: ``{asset file name: SHA-256 of its bytes}`` (see :func:`assets_sha256`)
ASSETS_SHA256 = "asset_sha256"
#: the files a checkpoint always has; every other file in it is a task asset (vocab.json, ...)
OWN_FILES = frozenset(
    {"model.safetensors", "config.json", "trainer_state.safetensors", "trainer_state.json"}
)
#: safetensors header key: SHA-256 of the file's tensors (see :func:`tensors_sha256`)
TENSORS_SHA256 = "rnnkit.tensors.sha256"
#: trainer_state.safetensors header key: SHA-256 of the bytes of trainer_state.json
TRAINER_JSON_SHA256 = "rnnkit.trainer_state.json.sha256"


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, truncated, corrupted, of another task, or that
    could not be written (one-line message naming the file)."""


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror if not e.filename else f"{e.strerror}: {e.filename}"
    return " ".join(str(e).split())[:300]


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


def assets_sha256(directory: str | os.PathLike) -> dict[str, str]:
    """``{relative path: SHA-256}`` of every file in ``directory`` but :data:`OWN_FILES`: the
    task's assets (vocab.json, labels.json, ...), as config.json records them."""
    d = Path(directory)
    return {
        f.relative_to(d).as_posix(): file_sha256(f)
        for f in sorted(d.rglob("*"))
        if f.is_file() and f.relative_to(d).as_posix() not in OWN_FILES
    }


# --------------------------------------------------------------------------- tied weights


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
