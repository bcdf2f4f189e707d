"""The site: strict build, an API reference covering every public name, generated pages.

The build itself is the ``built_site`` fixture (``mkdocs build --strict``, skipped with a
reason where the docs extra is not installed).
"""
from __future__ import annotations

import importlib
import json
import pkgutil
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "docs"))

griffe = pytest.importorskip("griffe", reason="the docs extra is not installed (pip install -e '.[docs]')")

from docs_api import api_pages, documented_paths, public_api  # noqa: E402
from docs_tables import benchmarks_page, results_page  # noqa: E402


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return api_pages(ROOT / "src")


# --------------------------------------------------------------------------- API reference


def _runtime_public_names():
    """(module, name, object) for every name in every public module's __all__, by importing."""
    import rnnkit

    mods = ["rnnkit"] + [m.name for m in pkgutil.walk_packages(rnnkit.__path__, "rnnkit.")
                         if not any(p.startswith("_") for p in m.name.split("."))]
    for modname in mods:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", []):
            if not name.startswith("__"):
                yield modname, name, getattr(mod, name)


def test_api_reference_documents_every_public_name(pages):
    documented = documented_paths(pages)
    missing = []
    for modname, name, obj in _runtime_public_names():
        if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
            target = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', name)}"
            if target in documented:
                continue
        # constants, aliases, objects defined in private modules: documented by any public path
        if any(p == f"{modname}.{name}" or p.endswith(f".{name}") and p.startswith(modname.rsplit(".", 1)[0])
               for p in documented):
            continue
        missing.append(f"{modname}.{name}")
    assert not missing, f"{len(missing)} public names have no API entry: {missing[:20]}"


def test_api_reference_has_a_page_per_subpackage_and_the_top_level_names(pages):
    import rnnkit

    assert {"reference/index.md", "reference/layers.md", "reference/reference.md",
            "reference/train.md", "reference/cells.md"} <= set(pages)
    index = pages["reference/index.md"]
    for name in rnnkit.__all__:
        if not name.startswith("__"):
            assert f"`rnnkit.{name}`" in index, name
    # README's promise that rnnkit.LSTM is the drop-in layer, documented where it is defined
    assert "(layers.md#rnnkit.layers.presets.LSTM)" in index


def test_api_generator_follows_aliases_and_lazy_exports(tmp_path):
    pkg = tmp_path / "rnnkit"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Top."""\n_EXPORTS = {"Thing": "rnnkit.sub"}\n'
                                     '__all__ = ["__version__", *_EXPORTS]\n__version__ = "0"\n')
    (pkg / "sub" / "__init__.py").write_text('"""Sub."""\nfrom .impl import Thing, helper\n'
                                             '__all__ = ["Thing", "helper"]\n')
    (pkg / "sub" / "impl.py").write_text('"""Impl."""\n__all__ = ["Thing"]\n\n\nclass Thing:\n'
                                         '    """A thing."""\n\n\ndef helper():\n    """Help."""\n')
    (pkg / "sub" / "_private.py").write_text('__all__ = ["hidden"]\nhidden = 1\n')
    modules, entries, _ = public_api(tmp_path)
    assert "rnnkit.sub._private" not in modules
    thing = entries["rnnkit.sub.impl.Thing"]
    assert thing.home == "rnnkit.sub.impl"
    assert set(thing.exported_as) == {"rnnkit.Thing", "rnnkit.sub.Thing", "rnnkit.sub.impl.Thing"}
    assert "rnnkit.sub.impl.helper" in entries  # exported by rnnkit.sub only, defined in impl
    got = api_pages(tmp_path)
    assert "::: rnnkit.sub.impl.Thing" in got["reference/sub.md"]
    assert "[`rnnkit.Thing`](sub.md#rnnkit.sub.impl.Thing)" in got["reference/index.md"]


# --------------------------------------------------------------------------- generated pages


def test_results_page_lists_every_recorded_result():
    text = results_page(ROOT)
    for path in sorted((ROOT / "experiments" / "results").glob("*.json")):
        rec = json.loads(path.read_text())
        assert f"`{path.stem}`" in text, path.name
        assert rec["command"] in text, path.name
    ptb = json.loads((ROOT / "experiments" / "results" / "ptb_small.json").read_text())
    assert f"**{ptb['value']:,.4g}**" in text


def test_benchmarks_page_renders_every_file():
    text = benchmarks_page(ROOT)
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        assert f"## {path.stem}" in text, path.name
    assert "| B=32 T=100 I=128 H=256 | lstm | rnnkit-auto |" in text


# --------------------------------------------------------------------------- the built site


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])


def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_site_builds_strictly_with_every_page(built_site):
    html = sorted(built_site.rglob("index.html"))
    assert (built_site / "index.html").exists() and (built_site / "search" / "search_index.json").exists()
    for page in ("getting-started", "tutorials/rnn-from-scratch", "tutorials/regularisation",
                 "results", "benchmarks", "reference/layers", "pipelines/forecasting"):
        assert (built_site / page / "index.html").exists(), page
    assert len(html) >= 30


def test_built_site_has_no_broken_internal_links_or_images(built_site):
    # 404.html is served for any missing path, so its links are root-absolute on purpose
    parsed = {p: _parse(p) for p in built_site.rglob("*.html") if p.name != "404.html"}
    broken = []
    for page, links in parsed.items():
        for ref in links.links + links.images:
            u = urlsplit(ref)
            if u.scheme or u.netloc or ref.startswith(("mailto:", "javascript:")):
                continue
            if u.path.startswith("/"):
                target = built_site / unquote(u.path).lstrip("/")
            else:
                target = (page.parent / unquote(u.path)).resolve() if u.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(built_site)}: {ref}")
                continue
            if u.fragment and target.suffix == ".html" and target in parsed:
                if unquote(u.fragment) not in parsed[target].ids:
                    broken.append(f"{page.relative_to(built_site)}: {ref} (no such anchor)")
    assert not broken, f"{len(broken)} broken links/images:\n" + "\n".join(broken[:40])


def test_search_index_knows_zoneout(built_site):
    index = json.loads((built_site / "search" / "search_index.json").read_text())
    hits = [d["location"] for d in index["docs"] if re.search(r"zoneout", d["text"], re.I)]
    assert any(h.startswith("tutorials/regularisation/") for h in hits), hits[:10]
