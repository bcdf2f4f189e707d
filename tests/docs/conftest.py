"""Shared fixtures of the documentation tests: paths, and the site built once per session.

``built_site`` runs ``mkdocs build --strict`` (the documented build command) into a temporary
directory; tests that need it are skipped, with the reason, where mkdocs is not installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "docs"   # the docs tooling the tests import (docs_blocks, docs_api)
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    mkdocs = shutil.which("mkdocs")
    try:
        import material  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError as e:
        pytest.skip(f"the docs extra is not installed ({e.name}): pip install -e '.[docs]'")
    if mkdocs is None:
        pytest.skip("mkdocs is not on PATH: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        pytest.fail("mkdocs build --strict failed:\n" + (proc.stdout + proc.stderr)[-6000:])
    return out
