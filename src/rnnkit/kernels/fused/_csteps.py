"""The compiled step math of the fused CPU scans (``_csteps.c``), built on first use.

The fused LSTM, LayerNorm-LSTM, GRU and LayerNorm-GRU scans issue one GEMM per step plus
5-20 small torch ops for the gates, the layer norms and zoneout; at B=32, H=256 those ops
cost as much as the GEMMs. ``_csteps.c`` does a step's elementwise work in one call over the rows
(vectorised, float32). It depends on nothing but libm, so it does not depend on the
torch version or its ABI: it is compiled once per machine with the system C compiler
(``cc``, or ``$CC``) into the user's cache (``~/.cache/rnnkit/c-steps/``), keyed by the
source, the compiler and the CPU, and loaded with :mod:`ctypes`.

Where there is no compiler (or the build fails, or ``RNNKIT_C_STEPS=0``), :func:`lib`
returns ``None`` and the scans run their pure-torch step, which gives the same numbers
to float32 rounding (tested both ways). ``rnnkit build-steps`` builds the library
ahead of time and prints where it is, or why it could not.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from ...runtime import cache_dir

__all__ = ["lib", "usable", "LNLSTM", "LSTM", "GRU", "build", "ptrs", "masks", "rate"]

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_csteps.c")
#: The portable flags; ``-march=native`` is added where the compiler takes it (the build
#: is per machine: the cache key includes the CPU's flags).
FLAGS = ["-O3", "-fopenmp-simd", "-fPIC", "-shared", "-std=gnu11"]


def _cpu_id() -> str:
    """The CPU model and feature flags (Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _compiler() -> list[str] | None:
    """The C compiler's command (``$CC``, which may carry flags or a wrapper, else ``cc``)."""
    cmd = shlex.split(os.environ.get("CC") or "cc")
    path = shutil.which(cmd[0]) if cmd else None
    return None if path is None else [path, *cmd[1:]]


def _cache_path(cc: list[str]) -> Path:
    try:
        version = subprocess.run([*cc, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *cc, version, " ".join(FLAGS),
                                    _cpu_id(), sys.platform]).encode()).hexdigest()[:16]
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    return cache_dir("c-steps") / f"rnnkit_steps_{key}{suffix}"


def build(force: bool = False) -> Path:
    """Compile ``_csteps.c`` into the cache (if not there yet); returns the library's path.

    Raises:
        RuntimeError: no C compiler, or the compiler failed (its output is in the message).
    """
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set $CC or install cc/gcc/clang)")
    out = _cache_path(cc)
    if out.exists() and not force:
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(out.parent, os.W_OK):
            raise PermissionError(f"{out.parent} is not writable")
    except OSError:  # a read-only home (some CI runners, containers): the temp dir instead
        out = Path(tempfile.gettempdir()) / "rnnkit-c-steps" / out.name
        if out.exists() and not force:
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for extra in (["-march=native"], []):  # some compilers/CPUs refuse -march=native
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=out.suffix)
        os.close(fd)
        cmd = [*cc, *FLAGS, *extra, "-o", tmp, str(SOURCE), "-lm"]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            res = None
            errors.append(f"{' '.join(cmd)}: {e}")
        if res is not None and res.returncode == 0:
            os.replace(tmp, out)  # atomic: a concurrent build writes the same file
            return out
        os.unlink(tmp)
        if res is not None:
            errors.append(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stderr.strip()}")
    raise RuntimeError("building rnnkit's native step library failed:\n" + "\n".join(errors))


@functools.cache
def lib() -> ctypes.CDLL | None:
    """The loaded library, built on first call; ``None`` where it cannot be (logged once)."""
    if os.environ.get("RNNKIT_C_STEPS", "1") == "0":
        return None
    try:
        dll = ctypes.CDLL(str(build()))
    except (RuntimeError, OSError) as e:
        log.warning("rnnkit: native step library unavailable, the fused CPU scans use "
                    "their pure-torch steps (same results, slower): %s", e)
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for name, struct, args in (  # after the struct: (step input,) t, [s | k,] n
            ("ln_lstm_fwd", LNLSTM, [ptr, i64, i64, i64]), ("ln_lstm_bwd", LNLSTM, [i64, i64, i64]),
            ("lstm_fwd", LSTM, [ptr, i64, i64]), ("lstm_bwd", LSTM, [i64, i64]),
            ("gru_fwd", GRU, [ptr, i64, i64, i64]), ("ln_gru_fwd", GRU, [ptr, i64, i64, i64]),
            ("gru_bwd", GRU, [i64, i64])):  # gru_bwd: both GRUs (layer norm if P.V is set)
        f = getattr(dll, name)
        f.restype, f.argtypes = None, [ctypes.POINTER(struct), *args]
    return dll


def usable(*tensors: Tensor | None) -> bool:
    """Whether a scan on these tensors can use the library: float32 CPU, and it loads."""
    t = tensors[0]
    if t.device.type != "cpu" or t.dtype != torch.float32:
        return False
    if any(x is not None and (x.dtype != torch.float32 or not x.is_contiguous())
           for x in tensors):
        return False
    return lib() is not None


def ptrs(**tensors: Tensor | None) -> dict[str, int | None]:
    """Struct fields from contiguous float32 tensors: their data addresses (``None``: NULL).

    The caller must hold the tensors while the struct is in use.
    """
    return {k: None if t is None else t.data_ptr() for k, t in tensors.items()}


def masks(z) -> Tensor | None:
    """A zoneout argument's per-step keep masks (a tensor), or None (a rate or no zoneout)."""
    return z if isinstance(z, Tensor) else None


def rate(z) -> float:
    """A zoneout argument's rate in evaluation (a float), else 0."""
    return float(z) if isinstance(z, float) else 0.0


_P = ctypes.c_void_p


class LNLSTM(ctypes.Structure):
    """Mirror of ``ln_lstm_t`` in ``_csteps.c``."""

    _fields_ = [("B", ctypes.c_int64), ("H", ctypes.c_int64),
                ("eps", ctypes.c_float), ("zh_rate", ctypes.c_float),
                ("zc_rate", ctypes.c_float), ("pad_", ctypes.c_float),
                *((n, _P) for n in ("XP", "h0", "c0", "g_hh", "b_hh", "g_c", "b_c", "ZH",
                                    "ZC", "V", "A", "MU", "RS", "CT", "MUC", "RSC", "TC",
                                    "C", "Y", "dY", "dA", "dV", "dLC", "dh", "dc",
                                    "keep_h", "keep_c", "part", "acc", "dct"))]


class LSTM(ctypes.Structure):
    """Mirror of ``lstm_t`` in ``_csteps.c``."""

    _fields_ = [("B", ctypes.c_int64), ("H", ctypes.c_int64),
                ("zh_rate", ctypes.c_float), ("zc_rate", ctypes.c_float),
                *((n, _P) for n in ("h0", "c0", "ZH", "ZC", "A", "C", "TC", "Y", "dY", "dA",
                                    "dh", "dc", "keep_h", "keep_c"))]


class GRU(ctypes.Structure):
    """Mirror of ``gru_t`` in ``_csteps.c`` (GRU and LayerNorm-GRU)."""

    _fields_ = [("B", ctypes.c_int64), ("H", ctypes.c_int64),
                ("zh_rate", ctypes.c_float), ("eps", ctypes.c_float),
                *((n, _P) for n in ("XP", "h0", "ZH", "Ghn", "RZ", "N", "Y", "dY", "dGh", "dXn",
                                    "dh", "keep_h", "g_hh", "b_hh", "V", "MU", "RS", "dV", "gh",
                                    "part", "acc"))]
