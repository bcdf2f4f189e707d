"""Whole time loops in compiled code: a torch C++ extension, built on first use and cached.

The fused scans (:mod:`rnnkit.kernels.fused`) run their time loop in Python: per step a
GEMM call and one call for the gate math, forward and backward. For the LSTM (without
``proj_size``), the GRU (torch's reset-after form), the LayerNorm-LSTM and the
LayerNorm-GRU, this extension runs the whole loop of one layer-direction in C++ instead
(``lstm.cpp``, ``gru.cpp``): per step the recurrent GEMM through ATen (``at::addmm_out`` /
``at::mm_out``: torch's BLAS, with torch's threads) and the elementwise step parallel over
batch rows and hidden units (``at::parallel_for``), writing the same saved (T, B, .)
buffers as the Python loop, in float32 and float64. The fused kernels call it in place of
their loop when :func:`usable` (same inputs, outputs and saved tensors; the custom ops,
their references for higher-order gradients, torch.func and torch.compile are unchanged).

Build: :func:`torch.utils.cpp_extension.load` with ``FLAGS`` (``-O3 -march=native``, and
``-fopenmp``, without which ``at::parallel_for`` in an extension runs on one thread) in a
temporary directory under ``rnnkit.runtime.cache_dir("compiled-scans")``, then renamed
atomically to a file keyed by the sources, torch's version, the compiler, the flags, the
CPU and Python; later processes import that file. A failed build (no compiler, an error)
is reported once, as a warning with the compiler's output, and the fused scans run their
Python loop (same numbers). The per-step products use MKL's packed weights where they have
room under the Python loop's peak memory, else BLAS's sgemm or oneDNN brgemm slices on the
unpacked weight (``scans.h``, ``StepGemm``); ``RNNKIT_PACKED_GEMM=0`` packs nowhere (less
memory, slower at large shapes). On a CPU that is not Intel's the products run as brgemm
slices wherever those take them, in training at every thread count and in the GRUs' inference
(MKL's kernels are slower there: docs/kernels.md, "MKL on an AMD CPU");
``RNNKIT_PREFER_SLICES=1`` or ``=0`` chooses that rule on any CPU.
``RNNKIT_COMPILED_SCANS=0`` turns the extension off; ``=1`` uses it wherever it can run;
unset, the scans use it where it was measured at least as fast
(:func:`preferred`; docs/kernels.md, "The time loop in compiled code").
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor

from ...runtime import cache_dir

__all__ = ["ext", "usable", "available", "built", "preferred", "build", "disabled", "mode",
           "FLAGS", "SOURCES", "KINDS"]

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
SOURCES = [_HERE / "module.cpp", _HERE / "lstm.cpp", _HERE / "lstm_proj.cpp", _HERE / "gru.cpp",
           _HERE / "rnn.cpp", _HERE / "elementwise.cpp"]
HEADERS = [_HERE / "scans.h"]
#: the flags the extension is built (and tested) with
FLAGS = ["-O3", "-march=native", "-fopenmp"]
LDFLAGS = ["-fopenmp"]
_DTYPES = (torch.float32, torch.float64)
#: the fused kernels whose loop is compiled (not: Cho's GRU); "lstm" includes proj_size
KINDS = ("lstm", "gru", "ln_lstm", "ln_gru", "rnn", "mingru", "minlstm", "qrnn", "sru",
         "indrnn")
_off = 0  # > 0 inside ``disabled()``


def _compiler() -> list[str]:
    """The C++ compiler torch's extension builder uses: ``$CXX`` or ``c++``."""
    return shlex.split(os.environ.get("CXX") or "c++")


def _describe(cc: list[str]) -> str:
    try:
        return subprocess.run([*cc, "--version"], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return "".join(sorted({ln for ln in f if ln.startswith(("model name", "flags"))}))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _key() -> str:
    cc = _compiler()
    parts = [*(p.read_bytes().decode() for p in SOURCES + HEADERS), torch.__version__,
             *cc, _describe(cc), " ".join(FLAGS + LDFLAGS), _cpu_id(), sys.version]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _import(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build():
    """The extension module: imported from the cache, or built there first.

    Raises:
        RuntimeError: the build failed (the message ends with the compiler's output).
    """
    name = f"rnnkit_scans_{_key()}"
    root = cache_dir("compiled-scans")
    final = root / f"{name}.so"
    if final.exists():
        return _import(name, final)
    root.mkdir(parents=True, exist_ok=True)
    with _one_builder(root):
        if final.exists():  # another process built it while this one waited
            return _import(name, final)
        return _build_into(name, root, final)


#: how long a process waits for another's build before building itself (a build takes about a
#: minute; a stopped or hung builder must not hold every later process forever)
BUILD_WAIT_S = 600.0


@contextlib.contextmanager
def _one_builder(root: Path, wait_s: float | None = None):
    """Hold an exclusive ``flock`` on ``root/.build.lock``: processes that start at once (test
    workers, DDP ranks, a run and its evaluation) wait for one build instead of each compiling
    the same sources for a minute on the same cores. After ``wait_s`` (:data:`BUILD_WAIT_S`)
    without the lock, or where ``flock`` is missing or refused, a process builds anyway (the
    rename into the cache is atomic, so that is only slower)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    try:
        f = open(root / ".build.lock", "a")  # noqa: SIM115 - closed below, after the yield
    except OSError:  # an unwritable cache: the build itself reports that
        yield
        return
    limit = BUILD_WAIT_S if wait_s is None else wait_s
    deadline = time.monotonic() + limit
    with f:
        waited = False
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("rnnkit: waiting for another process's build of the compiled "
                             "time loops")
                    waited = True
                if time.monotonic() >= deadline:
                    log.warning("rnnkit: another process has held the compiled time loops' "
                                "build lock (%s) for over %.0f s; building here too",
                                root / ".build.lock", limit)
                    break
                time.sleep(0.2)
            except OSError:  # a filesystem without flock
                break
        yield  # closing the file releases the lock


def _build_into(name: str, root: Path, final: Path):
    from torch.utils import cpp_extension

    log.info("rnnkit: building the compiled time loops into %s (once per source, torch, "
             "compiler and CPU; about a minute)", final)
    tmp = tempfile.mkdtemp(prefix=".build-", dir=root)
    try:
        with warnings.catch_warnings(record=True) as caught:  # torch's, folded into ours
            warnings.simplefilter("always")
            try:
                # (copies: load() appends to the lists it is given, which changed FLAGS and
                # so the key of a later call in the same process)
                mod = cpp_extension.load(name, [str(s) for s in SOURCES],
                                         extra_cflags=list(FLAGS), extra_ldflags=list(LDFLAGS),
                                         build_directory=tmp, verbose=False)
            except Exception as e:  # noqa: BLE001 - any failure means: no extension
                notes = "".join(f"\n{w.message}" for w in caught)
                raise RuntimeError(f"{e}{notes}") from None
        built = next(Path(tmp).glob(f"{name}*.so"))
        os.replace(built, final)  # atomic: a concurrent build writes the same bytes
        return mod
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@functools.cache
def _library_name() -> str:
    """The built library's file name in the cache (:func:`build`'s), computed once."""
    return f"rnnkit_scans_{_key()}.so"


def _in_cache() -> bool:
    """Whether the built library is in the cache now (one stat)."""
    return (cache_dir("compiled-scans") / _library_name()).exists()


def built() -> bool:
    """Whether the extension's library is in the cache (it loads without a build).

    The backends' rules for cases that torch's own kernel already serves well take the
    compiled loop only then: no call should wait a minute for a build to gain a few percent.
    It is the cache that decides, not whether this process has loaded the extension, so that
    every process on a machine (a run and its resumption) makes the same choice.
    """
    if os.environ.get("RNNKIT_COMPILED_SCANS", "") == "0":
        return False
    return _in_cache()


def _pack_cache_mb() -> int:
    """``RNNKIT_PACK_CACHE_MB`` (default 64), checked: a whole number of MB, 0 or more."""
    raw = os.environ.get("RNNKIT_PACK_CACHE_MB", "").strip()
    if not raw:
        return 64
    if not raw.isdigit():
        raise ValueError(f"RNNKIT_PACK_CACHE_MB: expected a whole number of MB (0 or more), "
                         f"got {raw!r}")
    return int(raw)


@functools.cache
def ext():
    """The loaded extension, built on first call; ``None`` when off or unbuildable.

    A failure is reported once per process (a warning with the tail of the compiler's
    output) and the fused scans keep their Python loop.
    """
    if os.environ.get("RNNKIT_COMPILED_SCANS", "") == "0":
        return None
    cache_mb = _pack_cache_mb()  # (a bad value raises here, not as a build failure)
    prefer = os.environ.get("RNNKIT_PREFER_SLICES", "")
    if prefer not in ("", "0", "1"):
        raise ValueError(f"RNNKIT_PREFER_SLICES={prefer!r}: expected 0 or 1 (unset: by the "
                         "CPU's vendor)")
    try:
        mod = build()
        # MKL's packed weights cost ~7.3 MB plus twice the weight while a loop runs; training
        # loops pack only where that has room (pack_fits() in scans.h); RNNKIT_PACKED_GEMM=0
        # packs nowhere (docs/kernels.md, "Memory")
        mod.set_packed(os.environ.get("RNNKIT_PACKED_GEMM", "") != "0")
        if prefer:  # else the extension's own default, from the CPU's vendor
            mod.set_prefer_slices(prefer == "1")
        # inference keeps the packed weights between calls, at most this many MB
        # (docs/kernels.md, "Memory"); 0 packs on every call instead
        mod.set_pack_cache_bytes(cache_mb << 20)
        return mod
    except Exception as e:  # noqa: BLE001
        tail = str(e)[-3000:]
        msg = ("rnnkit: building the compiled time loops (kernels/compiled) failed; the fused "
               f"scans run their Python loop instead (same results, slower). Output:\n{tail}")
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return None


def mode() -> str:
    """``"off"`` (``RNNKIT_COMPILED_SCANS=0`` or inside :func:`disabled`), ``"on"`` (``=1``)
    or ``"auto"`` (unset: where it was measured at least as fast)."""
    if _off:
        return "off"
    v = os.environ.get("RNNKIT_COMPILED_SCANS", "")
    return {"0": "off", "1": "on"}.get(v, "auto")


@contextlib.contextmanager
def disabled():
    """Within this block the fused scans run their Python loop (for A/B measurements)."""
    global _off
    _off += 1
    try:
        yield
    finally:
        _off -= 1


def usable(kind: str, *tensors: Tensor | None) -> bool:
    """Whether the fused scan ``kind`` runs its loop compiled on these tensors.

    CPU float32/float64, all one dtype and contiguous, the mode allowing it
    (:func:`mode`, :func:`preferred`) and the extension built.
    """
    t = tensors[0]
    if any(x is not None and (x.dtype != t.dtype or x.device != t.device
                              or not x.is_contiguous()) for x in tensors):
        return False
    return available(kind, t)


def available(kind: str, x: Tensor) -> bool:
    """Whether the fused scan ``kind`` runs its loop compiled for ``x``'s dtype and device
    (:func:`usable` without its layout checks: the backend's choice, before any copy)."""
    m = mode()
    if m == "off" or x.device.type != "cpu" or x.dtype not in _DTYPES:
        return False
    if m == "auto" and not preferred(kind, x):
        return False
    return ext() is not None


def preferred(kind: str, x: Tensor) -> bool:
    """Where the compiled loop is used without ``RNNKIT_COMPILED_SCANS=1``: every kind and
    shape it runs (CPU), since it was faster than the Python loop in every row measured (1 and
    2 threads, B=32 and 128, ``benchmarks/results/compiled_scans*.json``; B=1 and 4 in a run
    not recorded; docs/kernels.md, "The time loop in compiled code")."""
    return kind in KINDS and x.device.type == "cpu"
