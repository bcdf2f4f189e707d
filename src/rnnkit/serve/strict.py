"""Strict request handling for ``rnnkit serve`` (:mod:`rnnkit.serve.app`), and its messages.

- :class:`_Strict`: the base of every request body (unknown fields, bools or strings as
  numbers, NaN and infinities are 422).
- :class:`_StrictRoute`: 422 for a query parameter a route does not declare and for a JSON
  object with a key given twice, both named in ``loc``.
- the messages: validation errors without the request's values (:func:`_validation_errors`),
  a pipeline's one-line message as a validation error (:func:`_value_error`), an item's
  message as ``field[i]: ...`` (:func:`_item_error`); none echoes a value or a server path.
"""

import email.message
import json
import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

__all__: list[str] = []  # private to rnnkit.serve.app


class _Strict(BaseModel):
    """Request bodies: unknown fields, bools as numbers, strings as numbers, NaN and
    infinities are all 422 (``allow_inf_nan`` covers every float field, nested ones too)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- strict routes


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` object hook: a key given twice is an error, not "the last one wins"."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _is_json(content_type: str | None, strict: bool) -> bool:
    """Whether FastAPI reads a body with this Content-Type as JSON (none: unless ``strict``)."""
    if not content_type:
        return not strict
    m = email.message.Message()
    m["content-type"] = content_type
    sub = m.get_content_subtype()
    return m.get_content_maintype() == "application" and (sub == "json" or sub.endswith("+json"))


class _StrictJSONRequest(Request):
    """A request whose JSON body is parsed with :func:`_no_duplicates` (FastAPI then reuses
    the parsed body)."""

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = json.loads(await self.body(), object_pairs_hook=_no_duplicates)
        return self._strict_json


class _StrictRoute(APIRoute):
    """An API route that answers 422 for a query parameter it does not declare and for a
    JSON body with a key given twice, both named in ``loc``."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        declared = {p.alias for p in self.dependant.query_params}
        body_fields = {f for p in self.dependant.body_params
                       for f in getattr(p.field_info.annotation, "model_fields", {})}
        has_body = self.body_field is not None
        strict = self.strict_content_type is not False

        async def strict_handler(request: Request):
            request = _StrictJSONRequest(request.scope, request.receive)
            # a route taking neither a body nor query parameters (/health, /info) ignores a
            # query, as a load balancer's cache-busting probe=1 would otherwise mark it down
            unknown = [k for k in request.query_params if k not in declared] \
                if declared or has_body else []
            if unknown:
                k = unknown[0]
                takes = (f"it takes {', '.join(sorted(declared))}" if declared
                         else "it takes none")
                where = (f"; {_short(k, 60)} is a field of the JSON body"
                         if k in body_fields else "")
                raise RequestValidationError([{
                    "loc": ("query", k), "type": "extra_forbidden",
                    "msg": f"unknown query parameter for {self.path} ({takes}){where}"}])
            if has_body and _is_json(request.headers.get("content-type"), strict):
                body = await request.body()
                if body:
                    try:
                        await request.json()
                    except _DuplicateKey as e:
                        raise RequestValidationError([{
                            "loc": ("body", e.key), "type": "json_invalid",
                            "msg": f"JSON decode error: key {_short(e.key, 60)!r} appears more "
                                   "than once in an object; give each key once"}]) from None
                    except Exception:  # noqa: BLE001 - FastAPI's own parse reports it
                        pass
            return await handler(request)

        return strict_handler

# --------------------------------------------------------------------------- messages

_SHOWN = 200  # characters of a message part (a field name, a value) shown at most
_SERVER_TMP = re.compile(r"[^\s'\"]*rnnkit-serve-[^\s'\":,]*")  # a server temporary path


def _short(x: Any, n: int = _SHOWN) -> Any:
    if isinstance(x, str) and len(x) > n:
        return f"{x[:n]}... ({len(x)} characters)"
    return x


def _validation_errors(e: RequestValidationError, limit: int = 20) -> list[dict[str, Any]]:
    """pydantic's errors without ``input`` and ``ctx``: they echo the request's values (a NaN
    there made the response itself fail to serialise; a 20 MB string was sent back)."""
    out = []
    errs = e.errors()
    for x in errs[:limit]:
        msg = x.get("msg", "invalid value")
        if x.get("type") == "json_invalid" and isinstance(x.get("ctx"), dict):
            msg = f"{msg}: {x['ctx'].get('error', '')}"
        out.append({"loc": [_short(p, 60) for p in x.get("loc", ())], "msg": _short(str(msg)),
                    "type": str(x.get("type", "value_error"))})
    if len(errs) > limit:
        out.append(
            {
                "loc": ["body"],
                "msg": f"and {len(errs) - limit} more errors",
                "type": "too_many_errors",
            }
        )
    return out


# "--prompt: ...", "values['y']: ...", "texts[3]: ..."
_FIELD = re.compile(r"^-{0,2}([A-Za-z_][A-Za-z0-9_-]*)\b(?:\[(\d+|'[^']*')\])?")


def _value_error(msg: str) -> dict[str, Any]:
    """A pipeline's message in the shape of a validation error (the schema's 422 body), its
    ``loc`` the request field the message starts with ("--prompt" is the CLI's name for it),
    and the item (``texts[3]``, ``values['y']``) where it names one."""
    m = _FIELD.match(msg)
    name = m.group(1).replace("-", "_") if m else ""
    if name in {f for c in _Strict.__subclasses__() for f in c.model_fields}:
        loc: list[Any] = ["body", name]
        if m.group(2) is not None:
            item = m.group(2)
            loc.append(int(item) if item.isdigit() else _short(item[1:-1], 60))
        return {"loc": loc, "msg": msg.lstrip("-"), "type": "value_error"}
    return {"loc": ["body"], "msg": msg, "type": "value_error"}


def _item_error(field: str, i: int, e: ValueError) -> ValueError:
    """``e`` (a message about one item, perhaps naming the CLI's field) as ``field[i]: ...``."""
    msg = re.sub(r"^-{0,2}[A-Za-z_][A-Za-z0-9_-]*(\[[^\]]*\])?:\s*", "", str(e))
    return ValueError(f"{field}[{i}]: {msg}")
