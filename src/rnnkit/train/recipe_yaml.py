"""Reading a YAML recipe file into a plain mapping, before any typing.

The safe loader, made strict: a key repeated in one mapping and the YAML 1.1 integers that
are not plain decimal (``010``, ``0x10``, ``0b10``, ``1:30``) are errors, as are non-UTF-8
text and nesting deeper than :data:`MAX_DEPTH`; each names the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from rnnkit.train.config_types import ConfigError, _clean

__all__ = ["read_recipe_yaml", "nesting_depth", "MAX_DEPTH"]


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
