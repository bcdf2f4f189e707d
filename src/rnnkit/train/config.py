"""Typed configuration: dataclasses, YAML recipes and ``--set key=value`` overrides.

A recipe is a YAML mapping whose sections map onto dataclasses::

    task: lm                 # picks the task's ``data`` and ``model`` dataclasses
    data:     {...}          # owned by the task (e.g. rnnkit.tasks.lm.LMDataConfig)
    model:    {...}          # owned by the model (e.g. rnnkit.models.lm.LMConfig)
    optim:    {...}          # OptimConfig
    schedule: {...}          # ScheduleConfig
    trainer:  {...}          # TrainerConfig

Every key is checked: an unknown key names itself and the allowed ones, a value of the
wrong type names the key, the value and the expected type.  Values given on the command
line (``--set optim.lr=3e-4``) arrive as strings and are coerced to the field's type.

The dataclasses and :class:`ConfigError` live in :mod:`rnnkit.train.config_types`, the file
reading in :mod:`rnnkit.train.recipe_yaml`, the range checks in
:mod:`rnnkit.train.config_checks`; all are importable from here.

Example::

    cfg = load_recipe("configs/ptb_small.yaml", overrides=["trainer.max_epochs=2"])
    cfg.optim.lr  # -> 1.0
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from rnnkit.train.config_checks import _check_optim, _check_trainer, check_schedule
from rnnkit.train.config_types import (
    ConfigError,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
    TrainerConfig,
    _clean,
)
from rnnkit.train.recipe_yaml import (
    MAX_DEPTH,
    _Misread,
    _yaml_load,
    nesting_depth,
    read_recipe_yaml,
)
from rnnkit.train.task import UnknownTaskError, get_task_spec

__all__ = [
    "ConfigError",
    "OptimConfig",
    "ScheduleConfig",
    "TrainerConfig",
    "RunConfig",
    "from_dict",
    "to_dict",
    "pick_source",
    "apply_overrides",
    "load_recipe",
    "read_recipe_yaml",
    "build_run_config",
    "checkpoint_run_config",
    "nesting_depth",
    "check_schedule",
    "MAX_DEPTH",
]


# --------------------------------------------------------------------------- coercion


def _show(value: Any) -> str:
    """``repr(value)``, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


class _Override(str):
    """A ``--set`` value: command-line text, typed by the field it sets (see :func:`_coerce`)."""

    __slots__ = ()


#: how a null is written on the command line (for an optional field: None)
_NULL_TEXT = ("none", "null", "~")


def _parse_scalar(text: str, key: str) -> Any:
    """A command-line string read as a YAML scalar/flow value ("[1, 2]", "null", "true")."""
    try:
        value = _yaml_load(text)
        deep = nesting_depth(value) > MAX_DEPTH
    except _Misread as e:
        raise ConfigError(f"config key '{key}': {e.problem}") from None
    except yaml.YAMLError:
        return str(text)
    except RecursionError:
        deep = True
    if deep:
        raise ConfigError(
            f"config key '{key}': value nested too deeply (at most {MAX_DEPTH} levels expected)"
        )
    return value


def _typed_any(value: Any, key: str) -> Any:
    """An ``Any`` value with its ``--set`` strings read as YAML (``false`` -> False, ``3`` -> 3,
    ``null`` -> None), as the same text in the recipe would be; recipe values are kept."""
    if isinstance(value, _Override):
        parsed = _parse_scalar(value, key)
        if parsed is None and value.strip() not in ("", "~", "null", "Null", "NULL"):
            return str(value)  # "#x" is a comment to YAML, not a null
        return parsed
    if isinstance(value, dict):
        return {k: _typed_any(v, f"{key}.{_clean(k)}") for k, v in value.items()}
    if isinstance(value, list):
        return [_typed_any(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ConfigError naming ``key``."""

    def bad() -> ConfigError:
        return ConfigError(
            f"config key '{key}': expected {_type_name(tp)}, got {_show(value)} "
            f"({'str' if isinstance(value, str) else type(value).__name__})"
        )

    origin = typing.get_origin(tp)
    if tp is Any:
        return _typed_any(value, key)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in _NULL_TEXT):
            if type(None) in args:
                return None
            raise bad()
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(e)
        raise bad()
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return choices[choices.index(value)]
        raise ConfigError(
            f"config key '{key}': {_show(value)} is not one of {', '.join(map(repr, choices))}"
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "true",
            "yes",
            "on",
            "1",
            "false",
            "no",
            "off",
            "0",
        ):
            return value.lower() in ("true", "yes", "on", "1")
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise bad()
    if tp is str:
        if isinstance(value, _Override) and value.strip().lower() in _NULL_TEXT:
            # an optional field reads this text as None: here it is no name, nor a path
            raise ConfigError(
                f"config key '{key}': expected str, got null ({str(value)!r}); this key "
                "cannot be null"
            )
        if isinstance(value, str):
            return str(value)
        raise bad()
    if origin in (list, tuple, dict):
        if isinstance(value, str):
            value = _parse_scalar(value, key)
        args = typing.get_args(tp)
        if origin is dict:
            if not isinstance(value, dict):
                raise bad()
            kt, vt = args if args else (Any, Any)
            out = {}
            for k, v in value.items():
                if kt is str and not isinstance(k, str):
                    if not isinstance(k, int) or isinstance(k, bool):  # 1 -> "1" is as written
                        raise ConfigError(
                            f"config key '{key}': key {_show(k)} was read as "
                            f"{type(k).__name__}, expected a string; quote the key (YAML reads "
                            "unquoted yes/no/on/off/true/false as booleans, null and ~ as "
                            "null, 1.50 as the number 1.5)"
                        )
                out[str(k)] = _coerce(v, vt, f"{key}.{_clean(k)}")
            return out
        if not isinstance(value, (list, tuple)):
            raise bad()
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(
                    f"config key '{key}': expected {len(args)} values, got {len(value)} "
                    f"({_show(value)})"
                )
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        et = args[0] if args else Any
        items = [_coerce(v, et, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(
                f"config key '{key}': expected a mapping of {tp.__name__} fields, "
                f"got {_show(value)}"
            )
        return from_dict(tp, value, prefix=key)
    raise ConfigError(f"config key '{key}': unsupported field type {_type_name(tp)}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, checking every key and value type.

    Missing keys take the dataclass defaults; ``prefix`` names the section in errors.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config section '{prefix or cls.__name__}': expected a mapping, got {_show(data)}"
        )
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{_clean(k)}" if prefix else _clean(k)
        if k not in names:
            read_as = "" if isinstance(k, str) else f" (read as {type(k).__name__}: quote it)"
            raise ConfigError(
                f"unknown config key '{key}'{read_as}; allowed keys"
                f"{' in ' + repr(prefix) if prefix else ''}: {', '.join(names)}"
            )
        kwargs[k] = _coerce(v, hints[k], key)
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field without a default
        raise ConfigError(f"config section '{prefix or cls.__name__}': {e}") from None


def pick_source(section: str, source: str | None, files: dict[str, Any],
                default: str) -> str | None:
    """The known dataset a ``section`` reads, or None for its own files.

    A section that takes either a known dataset (``source``) or files (``train``/``valid``/
    ``test``): ``source`` if the recipe sets it, else ``default`` only when it names no file.
    Setting both is an error naming both, never one silently overriding the other.
    """
    named = {k: v for k, v in files.items() if v not in (None, "")}
    if source not in (None, ""):
        if named:
            k, v = next(iter(named.items()))
            raise ConfigError(
                f"config keys '{section}.source' ({source!r}) and '{section}.{k}' ({str(v)!r}) "
                f"both name the data; set {section}.source for a known dataset, or "
                f"{section}.train (valid, test) for your own files, not both"
            )
        return source
    return None if named else default


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain JSON/YAML-able dict (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- recipes


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a raw recipe mapping (values stay strings).

    The typed conversion in :func:`from_dict` coerces each string to its field's type: a
    field of type ``Any`` (``model.extras.*``) reads it as YAML (``false``, ``3``, ``null``);
    ``null`` (``none``, ``~``) is None for an optional field and an error for a required one.
    """
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. optim.lr=0.001")
        key, value = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise ConfigError(f"--set {item!r}: empty key")
        node = out
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: '{p}' is not a section")
            else:
                child = node[p] = dict(child)
            node = child
        node[parts[-1]] = _Override(value)
    return out




def build_run_config(raw: dict[str, Any], *, training_ranges: bool = True) -> RunConfig:
    """Typed :class:`RunConfig` from a raw mapping; the ``task`` key picks data/model types.

    ``training_ranges`` holds the optimizer, schedule and trainer sections to their ranges
    (:func:`check_schedule`, ...); :func:`checkpoint_run_config` leaves them out."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a recipe must be a mapping of sections, got {type(raw).__name__}")
    # "search" is read by ``rnnkit tune`` (rnnkit.tune.space); training ignores it
    allowed = [f.name for f in dataclasses.fields(RunConfig)] + ["search"]
    for k in raw:
        if k not in allowed:
            raise ConfigError(
                f"unknown config key '{_clean(k)}'; allowed top-level keys: {', '.join(allowed)}"
            )
    task = raw.get("task")
    if task is None:
        raise ConfigError("config key 'task' is missing (e.g. task: lm)")
    try:
        spec = get_task_spec(_coerce(task, str, "task"))
    except UnknownTaskError as e:
        raise ConfigError(str(e)) from None
    data = from_dict(spec.data_config, raw.get("data") or {}, "data")
    model = from_dict(spec.model_config, raw.get("model") or {}, "model")
    optim = from_dict(OptimConfig, raw.get("optim") or {}, "optim")
    schedule = from_dict(ScheduleConfig, raw.get("schedule") or {}, "schedule")
    trainer = from_dict(TrainerConfig, raw.get("trainer") or {}, "trainer")
    if training_ranges:
        _check_optim(optim)
        check_schedule(schedule, optim.lr)
        _check_trainer(trainer)
    return RunConfig(task=spec.name, data=data, model=model, optim=optim, schedule=schedule,
                     trainer=trainer)


def checkpoint_run_config(raw: dict[str, Any]) -> RunConfig:
    """The :class:`RunConfig` of a checkpoint's ``config.json``, for using the checkpoint
    (evaluate, predict, serve, export): typed as a recipe is, but without holding the
    optimizer, schedule and trainer sections to the training ranges, which an older rnnkit
    did not check and which do not change what the weights compute.  Training from it
    (``--resume``) checks them."""
    return build_run_config(raw, training_ranges=False)



def load_recipe(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML recipe, apply ``--set`` overrides and return the typed RunConfig."""
    raw = read_recipe_yaml(path)
    try:
        return build_run_config(apply_overrides(raw, overrides))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
