"""Runs ``test_triton.py`` under Triton's interpreter in a fresh process (CPU machines).

Triton fixes interpreted-or-compiled when its functions are first decorated; in a process
where other tests ran first (torch imports triton for inductor), the interpreter then calls
triton's own ``tl.*`` helpers compiled and fails. A fresh process with ``TRITON_INTERPRET=1``
set from the start is how the kernels are meant to be checked on CPU.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.kernels.triton import triton_available


@pytest.mark.skipif(not triton_available(), reason="triton is not installed (pip install 'rnnkit[gpu]')")
@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU, test_triton.py runs in-process")
def test_triton_kernels_under_the_interpreter_in_their_own_process():
    here = Path(__file__).resolve()
    env = dict(os.environ, TRITON_INTERPRET="1", RNNKIT_TRITON_ISOLATED="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                        "-m", "not slow",
                        str(here.with_name("test_triton.py"))],
                       cwd=here.parents[2], env=env, capture_output=True, text=True, timeout=1200)
    tail = (r.stdout + r.stderr)[-4000:]
    assert r.returncode == 0, tail
    assert " passed" in tail and " failed" not in tail, tail
