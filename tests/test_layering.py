"""The import contracts of .importlinter (import-linter): levels only look down.

Kept today: kernels never import layers, data, train or tasks; cells import only torch;
layers never import train, tasks or data; rnnkit.runtime is a leaf. The rest of issue 20's
contracts (no cycles anywhere, argparse only in the CLI) join as the tree gets there.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed: the test extra pins import-linter")
    r = subprocess.run([exe, str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={"PYTHONPATH": str(ROOT / "src"),
                                                    "PATH": str(Path(sys.executable).parent)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout, r.stdout[-3000:]
