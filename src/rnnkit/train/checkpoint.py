"""Checkpoints: a directory of safetensors + JSON, published atomically, loaded without pickle.

Layout of one checkpoint directory::

    model.safetensors            model state_dict (tied weights stored once)
    config.json                  {"format", "format_version", "rnnkit_version", "task",
                                  "config": full typed config,
                                  "asset_sha256": {asset file: SHA-256 of its bytes}}
    <task assets>                e.g. vocab.json (written by the task)
    trainer_state.safetensors    optimizer tensors, torch RNG state (uint8), carried state
    trainer_state.json           epoch, step, batch index, best metric, schedule state,
                                 optimizer scalars/param groups, python/numpy RNG, history

Integrity: each safetensors file carries the SHA-256 of its tensors (names, dtypes, shapes,
bytes) in its header metadata, ``trainer_state.safetensors`` the SHA-256 of
``trainer_state.json``, and ``config.json`` the SHA-256 of each task asset (an edited
labels.json would otherwise relabel every prediction); readers check them, so a flipped bit
is an error, not other weights or other labels. (``config.json`` itself is left unbound: it
is the file people edit, and its every value is typed and checked when it is read.)
Checkpoints written before these checks are read as before: ``format_version`` 2 (written
now) must record ``asset_sha256``, while version 1 (or none) was also written before the
asset hashes existed, so there a missing record checks nothing.

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

The parts, bottom up: :mod:`rnnkit.train.checkpoint_format` (format names, checksums,
nested tensors), :mod:`rnnkit.train.checkpoint_dirs` (publication and recovery),
:mod:`rnnkit.train.checkpoint_read` (the checked readers) and this module, the writer,
which re-exports the parts' public names.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import Tensor

from rnnkit.train.checkpoint_dirs import (
    _fsync,
    _lock,
    _publish,
    _recover,
    _remove,
    _stamp,
    has_checkpoint,
    recover_interrupted,
    resolve_checkpoint,
)
from rnnkit.train.checkpoint_format import (
    _FORMAT_VERSION,
    ASSETS_SHA256,
    FORMAT,
    FORMAT_VERSIONS,
    TENSORS_SHA256,
    TRAINER_JSON_SHA256,
    CheckpointError,
    _reason,
    _unique_state,
    assets_sha256,
    file_sha256,
    flatten_tensors,
    optimizer_from_flat,
    optimizer_to_flat,
    tensors_sha256,
    unflatten_tensors,
)
from rnnkit.train.checkpoint_read import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from rnnkit.train.checkpoint_read import (
    load_model_weights,
    read_config,
    read_model_state,
    read_run_config,
    read_trainer_state,
)

__all__ = [
    "CheckpointError",
    "FORMAT",
    "TENSORS_SHA256",
    "TRAINER_JSON_SHA256",
    "write_checkpoint",
    "resolve_checkpoint",
    "has_checkpoint",
    "read_config",
    "read_run_config",
    "read_model_state",
    "read_trainer_state",
    "load_model_weights",
    "recover_interrupted",
    "flatten_tensors",
    "unflatten_tensors",
    "optimizer_to_flat",
    "optimizer_from_flat",
    "file_sha256",
    "assets_sha256",
    "ASSETS_SHA256",
    "FORMAT_VERSIONS",
]

#: how long a writer waits for another writer or a recovering reader of the same checkpoint
LOCK_TIMEOUT = 600.0


# --------------------------------------------------------------------------- writing


def _save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata={**metadata, TENSORS_SHA256: tensors_sha256(tensors)})


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=True) + "\n"


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
        if write_assets is not None:
            write_assets(tmp)
        _write_text(
            tmp / "config.json",
            _json_text(
                {
                    "format": FORMAT,
                    "format_version": _FORMAT_VERSION,
                    "rnnkit_version": version,
                    "task": task,
                    "config": config,
                    ASSETS_SHA256: assets_sha256(tmp),  # the readers check each asset's bytes
                }
            ),
        )
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
