"""The API reference pages, generated from every public module's ``__all__``.

Read statically with griffe (nothing is imported, so a half-written module elsewhere cannot
break the build and torch is not loaded): every module under ``src/rnnkit`` whose dotted path
has no part starting with ``_`` is public, and its public names are its ``__all__``. The lazy
packages (``rnnkit``, ``rnnkit.diagnostics``) list theirs in an ``_EXPORTS`` dict, which is
read too. Each object is documented once, under the public module that defines it (or, if it
is defined in a private module, the first public module that exports it), with the other
import paths listed beside it::

    pages = api_pages(Path("src"))     # {"reference/layers.md": "...", ...}

One page per top-level subpackage or module of rnnkit, plus ``reference/index.md`` for the
names ``import rnnkit`` gives. ``documented_paths(pages)`` returns the ``::: path`` targets,
which ``tests/docs`` checks against the names the package exports at runtime.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ApiEntry", "public_api", "api_pages", "documented_paths"]


@dataclass
class ApiEntry:
    """One documented object: its defining path and every public path it is exported as."""

    path: str                      # canonical, e.g. rnnkit.layers.presets.LSTM
    home: str                      # public module whose section documents it
    exported_as: list[str] = field(default_factory=list)  # rnnkit.LSTM, rnnkit.layers.LSTM, ...
    found: bool = True             # False: listed in __all__ but not found in the source


def _is_public(path: str) -> bool:
    return not any(part.startswith("_") for part in path.split("."))


def _walk(module):
    yield module
    for sub in module.modules.values():
        if not sub.is_alias:
            yield from _walk(sub)


def _lazy_exports(module) -> dict[str, str] | None:
    """``name -> module path`` from a lazy package's ``_EXPORTS`` dict, or None."""
    attr = module.members.get("_EXPORTS")
    if attr is None or attr.is_alias or getattr(attr, "value", None) is None:
        return None
    try:
        table = ast.literal_eval(str(attr.value))
    except (ValueError, SyntaxError):
        return None
    out = {}
    for name, target in table.items():
        # rnnkit: full module paths; rnnkit.diagnostics: submodule names
        out[name] = target if target.startswith("rnnkit") else f"{module.path}.{target}"
    return out


def _names(module) -> list[str]:
    """A module's public names: ``__all__`` (with lazy ``_EXPORTS`` expanded)."""
    lazy = _lazy_exports(module) or {}
    names: list[str] = []
    for item in module.exports or []:
        if isinstance(item, str):
            names.append(item)
        elif str(item) == "_EXPORTS" or getattr(item, "name", None) == "_EXPORTS":
            names.extend(lazy)
    if not names and lazy:
        names = list(lazy)
    return [n for n in names if not n.startswith("__")]


def _resolve(pkg, path: str, lazy_of: dict[str, dict[str, str]], depth: int = 0) -> str:
    """Follow aliases (``from .x import y``) and lazy exports to the defining path."""
    if depth > 20:
        return path
    mod_path, _, name = path.rpartition(".")
    try:
        module = pkg.get_member(mod_path.split(".", 1)[1]) if "." in mod_path else pkg
    except KeyError:
        return path
    target = lazy_of.get(mod_path, {}).get(name)
    if target is not None:  # a lazy export wins over a same-named submodule (rnnkit.generate)
        return _resolve(pkg, f"{target}.{name}", lazy_of, depth + 1)
    member = module.members.get(name)
    if member is None:  # a module-level __getattr__ importing it from a submodule
        for sub in module.modules.values():
            found = None if sub.is_alias else sub.members.get(name)
            if found is not None:
                return _resolve(pkg, f"{sub.path}.{name}", lazy_of, depth + 1)
        return path
    if member.is_alias:
        return _resolve(pkg, member.target_path, lazy_of, depth + 1)
    return member.path


def _exists(pkg, path: str) -> bool:
    try:
        obj = pkg.get_member(path.split(".", 1)[1]) if "." in path else pkg
    except (KeyError, ValueError):
        return False
    return not obj.is_alias


def public_api(src: Path) -> tuple[list[str], dict[str, ApiEntry], dict[str, str]]:
    """(public module paths, canonical path -> entry, module path -> docstring summary)."""
    import griffe

    pkg = griffe.load("rnnkit", search_paths=[str(src)], resolve_aliases=False,
                      docstring_parser=None)
    modules = [m for m in _walk(pkg) if _is_public(m.path)]
    lazy_of = {m.path: lazy for m in modules if (lazy := _lazy_exports(m))}
    entries: dict[str, ApiEntry] = {}
    for m in modules:
        for name in _names(m):
            canonical = _resolve(pkg, f"{m.path}.{name}", lazy_of)
            e = entries.get(canonical)
            if e is None:
                home_mod = canonical.rpartition(".")[0]
                home = home_mod if _is_public(home_mod) else m.path
                e = entries[canonical] = ApiEntry(canonical, home, found=_exists(pkg, canonical))
            exported = f"{m.path}.{name}"
            if exported not in e.exported_as:
                e.exported_as.append(exported)
    summaries = {}
    for m in modules:
        doc = (m.docstring.value if m.docstring else "").strip().splitlines()
        summaries[m.path] = doc[0].strip() if doc else ""
    return [m.path for m in modules], entries, summaries


def _page_of(module_path: str) -> str:
    parts = module_path.split(".")
    return "reference/index.md" if len(parts) == 1 else f"reference/{parts[1]}.md"


def _anchor(path: str) -> str:
    return path  # mkdocstrings gives every documented object the id of its full path


def api_pages(src: Path) -> dict[str, str]:
    """Markdown of every reference page, keyed by its path under docs/."""
    modules, entries, summaries = public_api(src)
    by_home: dict[str, list[ApiEntry]] = {}
    for e in entries.values():
        by_home.setdefault(e.home, []).append(e)
    order = {p: i for i, p in enumerate(modules)}
    pages: dict[str, list[str]] = {}
    # top-level modules first get a page each; the package page is the index
    for mod in sorted(modules, key=lambda p: (p.count(".") > 1, p)):
        page = _page_of(mod)
        if page == "reference/index.md":
            continue
        lines = pages.setdefault(page, [])
        if not lines:
            top = ".".join(mod.split(".")[:2])
            lines += [f"# {top}", "", f"*{summaries.get(top, '')}*" if summaries.get(top) else "", ""]
        items = sorted(by_home.get(mod, []), key=lambda e: order.get(e.path.rpartition('.')[0], 0))
        if not items and mod.count(".") > 1:
            continue
        lines += [f"## `{mod}`", "", f"::: {mod}", "    options:", "      members: false",
                  "      show_root_heading: false", "      show_root_toc_entry: false", ""]
        lost = [e for e in items if not e.found]
        if lost:  # keep the build going; tests/docs reports them as undocumented
            lines += ['!!! warning "Not found in the source"', "",
                      "    Listed in `__all__` but not defined where the reference looked: "
                      + ", ".join(f"`{e.path}`" for e in lost), ""]
        for e in (e for e in items if e.found):
            others = [p for p in e.exported_as if p != e.path]
            lines += [f"::: {e.path}", "    options:", "      show_root_heading: true",
                      "      heading_level: 3", ""]
            if others:
                lines += ["Import as " + ", ".join(f"`{p}`" for p in others) + ".", ""]
    index = ["# API reference", "",
             "Generated from the docstrings of every public module (a module whose dotted path has no "
             "part starting with `_`) and its `__all__`, at every build, so it cannot fall behind "
             "the code. Each object is documented once, where it is defined; the names "
             "`import rnnkit` gives are:", "",
             "| name | defined in |", "|---|---|"]
    for e in sorted((e for e in entries.values() if e.found), key=lambda e: e.path):
        for p in e.exported_as:
            if p.count(".") == 1:
                page = _page_of(e.home).removeprefix("reference/")
                index.append(f"| [`{p}`]({page}#{_anchor(e.path)}) | `{e.path}` |")
    index += ["", "## Modules", "", "| page | modules |", "|---|---|"]
    for page in sorted(pages):
        mods = [m for m in modules if _page_of(m) == page]
        label = page.removeprefix("reference/").removesuffix(".md")
        index.append(f"| [rnnkit.{label}]({page.removeprefix('reference/')}) | "
                     + ", ".join(f"`{m}`" for m in mods) + " |")
    out = {"reference/index.md": "\n".join(index) + "\n"}
    out.update({p: "\n".join(lines) + "\n" for p, lines in sorted(pages.items())})
    return out


def documented_paths(pages: dict[str, str]) -> set[str]:
    """Every ``::: path`` target in ``pages``."""
    return {m.group(1) for text in pages.values() for m in re.finditer(r"^::: (\S+)", text, re.M)}

