"""tune_malloc/trim_malloc: glibc keeps freed memory while tuned, gives it back on trim,
opt-out by environment, never at import. Run in subprocesses: they change the allocator
of the whole process."""
import os
import platform
import subprocess
import sys

import pytest

from rnnkit.runtime import tune_malloc

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_opt_out(monkeypatch):
    monkeypatch.setenv("RNNKIT_MALLOC_TUNE", "0")
    assert tune_malloc() is False


RSS = """
import os, torch
import rnnkit.runtime as f
def rss():  # resident bytes
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
def freed():  # bytes of a 256 MB block that left the process when it was freed
    t = torch.empty(2 ** 26); t.fill_(1.0); a = rss(); del t; return a - rss()
MB = 2 ** 20
"""


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tuned_process_keeps_freed_memory_and_trim_gives_it_back():
    code = RSS + """
assert freed() > 200 * MB, 'untuned glibc should unmap a 256 MB block'
assert f.tune_malloc() and f.tune_malloc()
f1 = freed(); f2 = freed()
assert f1 < 16 * MB and f2 < 16 * MB, (f1, f2)
before = rss()
assert f.trim_malloc()
assert before - rss() > 200 * MB, (before, rss())
assert freed() > 200 * MB, 'after trim_malloc glibc unmaps large blocks again'
assert f.tune_malloc(), 'tuning again after a trim'
print('ok')
"""
    r = _run(code, RNNKIT_MALLOC_TUNE="1")
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


def test_opt_out_leaves_the_allocator_alone():
    r = _run(RSS + "assert not f.tune_malloc() and not f.trim_malloc(); print('ok')",
             RNNKIT_MALLOC_TUNE="0")
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


def test_not_applied_by_importing_rnnkit():
    code = ("import rnnkit, rnnkit.layers, rnnkit.kernels.fused, rnnkit.runtime.malloc as m; "
            "import sys; sys.exit(0 if not m._done and not m._glibc.cache_info().currsize "
            "else 1)")
    assert _run(code).returncode == 0
