"""tune_malloc: glibc's mallopt once, opt-out by environment, never at import."""
import platform
import subprocess
import sys

import pytest

from rnnkit.kernels.fused import _malloc, tune_malloc

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_opt_out(monkeypatch):
    monkeypatch.setenv("RNNKIT_MALLOC_TUNE", "0")
    assert tune_malloc() is False


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_applies_once_on_glibc(monkeypatch):
    monkeypatch.delenv("RNNKIT_MALLOC_TUNE", raising=False)
    monkeypatch.setattr(_malloc, "_done", None)
    assert tune_malloc() is True
    assert tune_malloc() is True and _malloc._done is True


def test_not_applied_by_importing_rnnkit():
    code = ("import rnnkit, rnnkit.layers, rnnkit.kernels.fused as f; "
            "import sys; sys.exit(0 if f._malloc._done is None else 1)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
