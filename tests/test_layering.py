"""The house holds: import contracts (import-linter), the level diagram of the architecture
page, module size and ruff, checked in CI like any test.

The contracts live in .importlinter: levels only look down, no import cycles between
siblings, kernels never import layers/data/train/tasks, cells import only torch, layers never
import train/tasks/data, data/reference/testing stand alone, runtime is a leaf, and only
rnnkit.commands imports argparse (docs/architecture.md explains each).
"""
import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "rnnkit"
MAX_LINES = 500
#: modules allowed over MAX_LINES, each with its reason on docs/architecture.md
EXCEPTIONS: dict[str, str] = {}


def _tool(name: str) -> str:
    exe = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail(f"{name} is not installed: the test extra pins it (pip install -e '.[test]')")
    return exe


def test_import_contracts_are_kept():
    r = subprocess.run([_tool("lint-imports"), str(ROOT / ".importlinter")], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(ROOT / "src"), "PATH": str(Path(sys.executable).parent)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout, r.stdout[-3000:]


def _contract_levels() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    lines = cfg["importlinter:contract:levels"]["layers"].strip().splitlines()
    return [" ".join(line.split()) for line in lines]


def test_architecture_page_draws_the_contracted_levels():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = page.split("<!-- levels:", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    drawn = [re.split(r"\s{2,}", line.strip())[0] for line in block.strip().splitlines()]
    assert drawn == _contract_levels()


def test_every_package_has_a_place():
    placed = {m.strip() for line in _contract_levels() for m in line.split(":")}
    apart = {"rnnkit.data", "rnnkit.reference", "rnnkit.testing", "rnnkit.runtime"}
    found = {f"rnnkit.{p.stem}" for p in SRC.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    found -= {"rnnkit.__init__", "rnnkit.__main__"}
    assert found - placed - apart == set(), "a package or module outside every level of .importlinter"


def test_no_module_over_500_lines():
    over = {str(p.relative_to(SRC)): n for p in sorted(SRC.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert set(over) <= set(EXCEPTIONS), f"modules over {MAX_LINES} lines: {over}"


def test_ruff_is_clean_on_src():
    r = subprocess.run([_tool("ruff"), "check", "--no-cache", "src"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]
