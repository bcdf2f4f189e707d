"""Export a checkpoint to ONNX or TorchScript, verified against the checkpoint's own outputs.

::

    rnnkit export runs/shakespeare_char/best --format onnx  # -> .../best.onnx + best.onnx.json
    rnnkit export runs/fsdd/best --format torchscript --out fsdd.pt

The graph is the task's inference step with the state as explicit inputs/outputs and a
``lengths`` input for padded batches (each pipeline's :attr:`~rnnkit.train.task.TaskSpec.export`,
:mod:`rnnkit.tasks.export_steps`).  After writing, the
file is loaded back (onnxruntime for ONNX, ``torch.jit.load`` for TorchScript) and run on
random inputs of two sizes different from the traced one, the second call starting from the
state the first returned; every output must match the PyTorch model within ``atol`` (else a
``ValueError``).  The numbers go to the sidecar ``<file>.json`` with the input/output names,
dynamic axes, state pairs and task facts a consumer needs.

Why the TorchScript-based ONNX exporter (``dynamo=False``): on torch 2.13 the default
``torch.export``-based exporter bakes the traced ``T`` into a Reshape of the LSTM output (the
file fails in onnxruntime for any other length) and cannot trace ``lengths`` (the packing is
data-dependent), while the TorchScript-based one maps torch's fused kernel to the ONNX
``LSTM``/``GRU``/``RNN`` operator with ``sequence_lens``, exact for any ``T``, ``B`` and lengths.

Example::

    info = export_checkpoint("runs/shakespeare_char/best", "onnx", "lm.onnx")
    info["verify"]["max_abs_diff"]   # e.g. 3e-6
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit.tasks.export_steps import ExportSpec

__all__ = ["export_checkpoint", "export_module", "verify_export", "load_exported", "ExportSpec",
           "export_spec", "check_atol", "FORMATS"]

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


def export_spec(checkpoint: str | Path) -> ExportSpec:
    """The :class:`ExportSpec` of a checkpoint directory, from its pipeline's TaskSpec."""
    from rnnkit.train.checkpoint import read_config
    from rnnkit.train.task import get_task_spec, task_names

    task = read_config(checkpoint).get("task")
    spec = get_task_spec(task) if isinstance(task, str) else None
    if spec is None or spec.export is None:
        have = [n for n in task_names() if get_task_spec(n).export is not None]
        raise ValueError(f"export: {checkpoint} is a {task!r} checkpoint; export supports "
                         f"{', '.join(have)} checkpoints")
    with torch.no_grad():
        return spec.export(Path(checkpoint))


#: torch's C++ warnings during ONNX export that are known harmless here: the TorchScript
#: exporter has no shape inference for the packing ops around the recurrent layer, so it warns
#: that shapes "may" be wrong; every export is then run in onnxruntime at two other sizes and
#: compared with the PyTorch model (:func:`verify_export`), which is what shows they are right.
HARMLESS_EXPORT_WARNINGS = (
    re.compile(r"shape inference of prim::(PackPadded|PadPacked) type is missing"),
)


@contextlib.contextmanager
def _quiet_harmless_stderr():
    """Drop :data:`HARMLESS_EXPORT_WARNINGS` lines from what C++ writes to stderr (fd 2)
    meanwhile; every other line is written back."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not any(p.search(line) for p in HARMLESS_EXPORT_WARNINGS):
                    sys.stderr.write(line)
            sys.stderr.flush()


def export_module(spec: ExportSpec, fmt: str, path: str | Path, *, opset: int = 17) -> Path:
    """Write ``spec.module`` to ``path`` as ``fmt`` ("onnx" or "torchscript")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        # tracer and deprecation warnings about the checks we bake in
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            with _quiet_harmless_stderr():
                torch.onnx.export(
                    spec.module,
                    spec.example_inputs,
                    str(path),
                    input_names=spec.input_names,
                    output_names=spec.output_names,
                    dynamic_axes=spec.dynamic_axes,
                    opset_version=opset,
                    dynamo=False,
                )
        elif fmt == "torchscript":
            traced = torch.jit.trace(spec.module, spec.example_inputs, check_trace=False)
            traced.save(str(path))
        else:
            raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return path


def load_exported(path: str | Path, fmt: str):
    """A callable ``run(*tensors) -> list of numpy arrays`` over an exported file."""
    if fmt == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]

        def run_onnx(*xs: torch.Tensor) -> list[np.ndarray]:
            return sess.run(None, {n: x.numpy() for n, x in zip(names, xs)})

        return run_onnx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = torch.jit.load(str(path))

    def run_ts(*xs: torch.Tensor) -> list[np.ndarray]:
        with torch.no_grad():
            return [o.numpy() for o in mod(*xs)]

    return run_ts


def check_atol(atol: Any, name: str = "atol") -> float:
    """``atol`` as a float if it is a finite number >= 0, else a one-line ValueError
    (a NaN tolerance would make every comparison pass)."""
    if isinstance(atol, bool) or not isinstance(atol, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name}: {atol!r}; expected a finite number >= 0")
    if not math.isfinite(float(atol)) or atol < 0:
        raise ValueError(f"{name}: {float(atol):g}; expected a finite number >= 0")
    return float(atol)


def _max_abs_diff(got: Any, ref: np.ndarray) -> float:
    """max |got - ref| over every element; ``inf`` for another shape, ``nan`` where either
    side is not finite (NumPy's max propagates NaN; Python's ``max()`` would drop it)."""
    got = np.asarray(got)
    if got.shape != ref.shape:
        return math.inf
    if got.size == 0:
        return 0.0
    d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    return float(d.max()) if np.isfinite(d).all() else math.nan


def verify_export(spec: ExportSpec, run, sizes: tuple[tuple[int, int], ...] = ((11, 2), (5, 4)),
                  atol: float = 1e-4) -> dict[str, Any]:
    """Max |exported - PyTorch| over calls with new sizes, carrying the state between calls.

    Call ``k`` uses inputs of size ``sizes[k]``; from the second call on, the state inputs
    are the state outputs of the previous call (each side its own), with the batch size
    of the first call.  Raises ``ValueError`` above ``atol`` (a finite number >= 0), for an
    output of another shape, and for any NaN or infinity in either side's outputs (a file
    that returns NaN is never "equal" to the checkpoint).
    """
    atol = check_atol(atol)
    B = sizes[0][1]
    worst, checks, bad = 0.0, [], []
    ref_state = got_state = None
    for k, (T, _) in enumerate(sizes):
        xs = list(spec.make_inputs(T, B, seed=100 + k))
        n_state = len(spec.state)
        ref_in, got_in = list(xs), list(xs)
        if k and n_state:
            ref_in[-n_state:], got_in[-n_state:] = (
                ref_state,
                [torch.from_numpy(s) for s in got_state],
            )
        with torch.no_grad():
            ref = [o.numpy() for o in spec.module(*ref_in)]
        got = run(*got_in)
        if len(got) != len(ref):
            raise ValueError(f"export: the exported model returns {len(got)} outputs; the "
                             f"checkpoint's step returns {len(ref)} "
                             f"({', '.join(spec.output_names)})")
        diffs = {n: _max_abs_diff(g, r) for n, g, r in zip(spec.output_names, got, ref)}
        bad += [f"{n} (T={T}, B={B})" for n, v in diffs.items() if not math.isfinite(v)]
        checks.append({"T": T, "B": B, "carried_state": bool(k and n_state), "max_abs_diff": diffs})
        worst = max([worst, *(v for v in diffs.values() if math.isfinite(v))])
        if n_state:
            ref_state = [torch.from_numpy(r) for r in ref[-n_state:]]
            got_state = got[-n_state:]
    if bad:
        raise ValueError(f"export: output {bad[0]} of the exported model or the checkpoint is not "
                         "finite (NaN or infinity) or has another shape; the file is not verified "
                         f"(outputs that fail: {', '.join(bad)})")
    if worst > atol:
        raise ValueError(f"export: the exported model differs from the checkpoint by {worst:.3g} "
                         f"(> atol {atol:g}); details: {checks}")
    return {"max_abs_diff": worst, "atol": atol, "checks": checks}


def export_checkpoint(checkpoint: str | Path, fmt: str = "onnx", out: str | Path | None = None, *,
                      verify: bool = True, atol: float = 1e-4, opset: int = 17) -> dict[str, Any]:
    """Export a checkpoint directory; returns (and writes next to the file as JSON) its description.

    Args:
        checkpoint: a checkpoint directory (``best/``, ``last/``).
        fmt: "onnx" or "torchscript".
        out: the file to write (default: ``<checkpoint>.onnx`` / ``<checkpoint>.pt``).
        verify: reload the file and compare with the PyTorch model (:func:`verify_export`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    atol = check_atol(atol)
    ckpt = Path(checkpoint)
    spec = export_spec(ckpt)
    path = Path(out) if out is not None else ckpt.with_name(ckpt.name + FORMATS[fmt])
    export_module(spec, fmt, path, opset=opset)
    info: dict[str, Any] = {
        "format": fmt,
        "file": str(path),
        "checkpoint": str(ckpt),
        "task": spec.task,
        "inputs": spec.input_names,
        "outputs": spec.output_names,
        "dynamic_axes": {
            k: {str(a): s for a, s in v.items()} for k, v in spec.dynamic_axes.items()
        },
        "state": [list(p) for p in spec.state],
        "meta": spec.meta,
        "torch": torch.__version__,
    }
    if fmt == "onnx":
        info["opset"] = opset
    if verify:
        info["verify"] = verify_export(spec, load_exported(path, fmt), atol=atol)
    Path(str(path) + ".json").write_text(json.dumps(info, indent=1) + "\n")
    return info
