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

Example::

    cfg = load_recipe("configs/ptb_small.yaml", overrides=["trainer.max_epochs=2"])
    cfg.optim.lr  # -> 1.0
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.constructor import ConstructorError

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


class ConfigError(ValueError):
    """A recipe or override that does not fit the typed configuration (one-line message)."""


@dataclass
class OptimConfig:
    """Optimizer: ``sgd`` (with optional momentum/Nesterov), ``adam``, ``adamw`` or ``rmsprop``."""

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    alpha: float = 0.99  # RMSprop smoothing constant


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, a multiplier on ``optim.lr``.

    ``lr(step, epoch) = lr0 * warmup(step) * main(epoch or step)`` where ``warmup`` rises
    linearly from ``1/warmup_steps`` to 1 over the first ``warmup_steps`` optimizer steps and
    ``main`` is one of: ``constant``; ``step`` (``gamma ** (1 + (e - decay_start) // step_size)``
    from epoch ``decay_start`` on, default ``decay_start = step_size``: torch's StepLR; with
    ``decay_start=4, step_size=1, gamma=0.5`` it is Zaremba et al.'s halving after epoch 4);
    ``cosine`` (from 1 to ``min_lr/lr`` over all training steps); ``plateau`` (times
    ``gamma`` when the monitored validation metric has not improved for ``patience``
    evaluations).

    Ranges (checked when the recipe is read, :func:`check_schedule`): ``warmup_steps >= 0``,
    ``step_size >= 1``, ``gamma`` finite and > 0, at most 1 for ``step`` and ``plateau`` (a
    decay); ``decay_start >= 0`` (step); ``0 <= min_lr <= optim.lr`` (cosine);
    ``patience >= 0`` and finite ``threshold >= 0`` (plateau).
    """

    name: Literal["constant", "step", "cosine", "plateau"] = "constant"
    warmup_steps: int = 0
    gamma: float = 0.1
    step_size: int = 1
    decay_start: int | None = None
    min_lr: float = 0.0
    patience: int = 2
    threshold: float = 1e-4


@dataclass
class TrainerConfig:
    """The loop: stopping, checkpoints, clipping, devices, precision, logging.

    ``max_time_minutes`` is measured on ``budget_clock``: "wall" (elapsed time) or
    "process" (CPU time of the training process, the fair measure on shared cores).

    ``max_model_memory_gb`` caps the model's parameters plus optimizer state, checked before
    anything is allocated (:mod:`rnnkit.train.sizing`); None: half of the machine's memory
    (or ``RNNKIT_MAX_MODEL_MEMORY_GB``); ``inf`` turns the check off.

    ``checkpoints``: "disk" writes ``best/``, ``last/`` and ``summary.json`` into the run
    directory; "memory" keeps the best weights in memory (``Trainer.load_best`` restores
    them) and writes no checkpoint, for throwaway fits that are never resumed (an anomaly
    detector's, a demo's). ``validate_at_start`` evaluates the untrained model before the
    first step, so it is the first candidate for the best weights.
    """

    max_epochs: int = 10
    max_steps: int | None = None
    max_time_minutes: float | None = None
    budget_clock: Literal["wall", "process"] = "wall"
    val_every_steps: int | None = None
    checkpoint_every_steps: int | None = 200
    grad_clip: float | None = 5.0
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int | None = None
    min_delta: float = 0.0
    seed: int = 1234
    deterministic: bool = False
    threads: int | None = None
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true"] = "32-true"
    log_every_steps: int = 50
    progress: bool = True
    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])
    plot: bool = True
    out_dir: str = "runs"
    name: str | None = None
    max_model_memory_gb: float | None = None
    checkpoints: Literal["disk", "memory"] = "disk"
    validate_at_start: bool = False


@dataclass
class RunConfig:
    """A whole run: the task name plus one typed section per component."""

    task: str
    data: Any
    model: Any
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


# --------------------------------------------------------------------------- coercion


def _clean(key: Any) -> str:
    """A key as one printable line (a key from a file may hold newlines or control characters)."""
    return repr(str(key))[1:-1]


def _show(value: Any) -> str:
    """``repr(value)``, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


#: deepest nesting a recipe, an override or a checkpoint's JSON may have (ours stay under 15)
MAX_DEPTH = 100


def nesting_depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """Depth of nested lists/dicts in ``obj`` (iterative; stops counting past ``limit``)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list, tuple)):
            deepest = max(deepest, d)
            if deepest > limit:
                break
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return deepest


class _Misread(ConstructorError):
    """YAML that the plain safe loader would silently read as something else."""


_NON_DECIMAL = {"0x": "a hexadecimal", "0b": "a binary", "0o": "an octal"}


class _RecipeLoader(yaml.SafeLoader):
    """The safe loader, refusing what it would otherwise silently misread.

    A key repeated in one mapping (the plain loader keeps the last value, or for a section
    the last section wholesale) and the YAML 1.1 integers that are not plain decimal:
    ``010`` (octal: 8), ``0x10`` (16), ``0b10`` (2) and ``1:30`` (base 60: 90).  rnnkit
    reads integers only as written in decimal, as ``--set`` does; a merge key (``<<``) may
    still be overridden by the mapping's own keys, as YAML defines.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: the base class says so
                    continue
                if first is not None:
                    raise _Misread(
                        None, None,
                        f"key '{_clean(key)}' repeated in one mapping (first on line "
                        f"{first.line + 1}); each key may appear once, a repeat would "
                        "silently replace the first",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def _check_number(self, node: yaml.ScalarNode, kind: str, value: Any) -> Any:
        text = str(node.value)
        digits = text.lstrip("+-").replace("_", "").lower()
        if ":" in digits:
            form = "a base-60 (sexagesimal)"
        elif kind == "integer" and digits[:2] in _NON_DECIMAL:
            form = _NON_DECIMAL[digits[:2]]
        elif kind == "integer" and len(digits) > 1 and digits[0] == "0":
            form = "an octal"
        else:
            return value
        raise _Misread(
            None, None,
            f"{text} is {form} {kind} to YAML 1.1, read as {value!r}; rnnkit takes numbers "
            "only in plain decimal: write it so, or quote it for a string",
            node.start_mark,
        )

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        return self._check_number(node, "integer", super().construct_yaml_int(node))

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        return self._check_number(node, "number", super().construct_yaml_float(node))


_RecipeLoader.add_constructor("tag:yaml.org,2002:int", _RecipeLoader.construct_yaml_int)
_RecipeLoader.add_constructor("tag:yaml.org,2002:float", _RecipeLoader.construct_yaml_float)


def _yaml_load(text: str) -> Any:
    """``text`` read by :class:`_RecipeLoader` (safe: plain YAML types only)."""
    return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass


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


def _check_trainer(t: TrainerConfig) -> TrainerConfig:
    """Ranges the types cannot say: a negative grad_clip would reverse every gradient
    (torch scales by max_norm / norm), 0 would zero them; a negative patience never stops."""
    def bad(key: str, want: str) -> ConfigError:
        return ConfigError(f"config key 'trainer.{key}': expected {want}, got {getattr(t, key)}")

    if t.grad_clip is not None and not (math.isfinite(t.grad_clip) and t.grad_clip > 0):
        raise bad("grad_clip", "a positive norm or null (no clipping)")
    if t.max_time_minutes is not None and not t.max_time_minutes > 0:
        raise bad("max_time_minutes", "a positive number of minutes or null")
    if t.max_epochs < 1:
        raise bad("max_epochs", "a positive integer")
    for key in ("max_steps", "val_every_steps", "checkpoint_every_steps", "threads"):
        if getattr(t, key) is not None and getattr(t, key) < 1:
            raise bad(key, "a positive integer or null")
    if t.patience is not None and t.patience < 0:
        raise bad("patience", "an integer >= 0 or null")
    if not (math.isfinite(t.min_delta) and t.min_delta >= 0):
        raise bad("min_delta", "a number >= 0 (finite)")
    if t.log_every_steps < 1:
        raise bad("log_every_steps", "a positive integer")
    if not 0 <= t.seed < 2**63:
        raise bad("seed", "an integer in [0, 2**63)")
    return t


def _check_optim(o: OptimConfig) -> OptimConfig:
    """Ranges of the optimizer's numbers (a nan rate, or eps=0, would only show up later as a
    "diverged" run; torch's own messages name no config key)."""
    def bad(key: str, want: str) -> ConfigError:
        return ConfigError(f"config key 'optim.{key}': expected {want}, got {getattr(o, key)}")

    if not (math.isfinite(o.lr) and o.lr > 0):
        raise bad("lr", "a positive, finite learning rate")
    if o.name != "sgd" and not (math.isfinite(o.eps) and o.eps > 0):
        raise bad("eps", f"a positive, finite number ({o.name} divides by sqrt(v) + eps)")
    if not (math.isfinite(o.weight_decay) and o.weight_decay >= 0):
        raise bad("weight_decay", "a number >= 0 (finite)")
    if o.name in ("sgd", "rmsprop") and not (math.isfinite(o.momentum) and o.momentum >= 0):
        raise bad("momentum", "a number >= 0 (finite)")
    if o.name in ("adam", "adamw") and not all(0 <= b < 1 for b in o.betas):
        raise bad("betas", "two numbers in [0, 1)")
    return o


def check_schedule(s: ScheduleConfig, lr: float) -> ScheduleConfig:
    """Ranges of the schedule's numbers, for a base rate ``lr`` (``optim.lr``).

    A negative ``min_lr`` turns cosine into gradient ascent, one above ``lr`` raises the rate;
    a ``gamma`` above 1 grows it; nan or a negative count would fail (or never act) mid-run.
    """
    def bad(key: str, want: str) -> ConfigError:
        return ConfigError(
            f"config key 'schedule.{key}': expected {want}, got {getattr(s, key)}"
        )

    if s.warmup_steps < 0:
        raise bad("warmup_steps", "an integer >= 0")
    if s.step_size < 1:
        raise bad("step_size", "a positive integer")
    decays = s.name in ("step", "plateau")
    if not (math.isfinite(s.gamma) and s.gamma > 0 and (s.gamma <= 1 or not decays)):
        raise bad("gamma", f"a decay factor in (0, 1]{f' for {s.name}' if decays else ''}")
    if s.name == "step" and s.decay_start is not None and s.decay_start < 0:
        raise bad("decay_start", "an epoch >= 0 or null (= step_size)")
    if s.name == "cosine" and not (math.isfinite(s.min_lr) and 0 <= s.min_lr <= lr):
        raise bad("min_lr", f"a rate in [0, optim.lr = {lr:g}] (cosine falls from optim.lr "
                            "to min_lr)")
    if s.name == "plateau":
        if s.patience < 0:
            raise bad("patience", "an integer >= 0 (evaluations without improvement)")
        if not (math.isfinite(s.threshold) and s.threshold >= 0):
            raise bad("threshold", "a number >= 0 (finite)")
    return s


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


def read_recipe_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML recipe file holds, read as :func:`load_recipe` reads it (safe types
    only; repeated keys, non-decimal YAML 1.1 numbers, non-UTF-8 text and deep nesting are
    one-line ConfigErrors naming the file and line), before any typing."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    too_deep = ConfigError(f"{path}: YAML nested too deeply (at most {MAX_DEPTH} levels expected)")
    try:
        raw = _yaml_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    except RecursionError:
        raise too_deep from None
    if nesting_depth(raw) > MAX_DEPTH:
        raise too_deep
    if raw is None:
        raise ConfigError(f"{path}: recipe is empty")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a recipe must be a mapping of sections, got {type(raw).__name__}"
        )
    return raw


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML recipe, apply ``--set`` overrides and return the typed RunConfig."""
    raw = read_recipe_yaml(path)
    try:
        return build_run_config(apply_overrides(raw, overrides))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
