"""``rnnkit export CKPT --format onnx|torchscript [--out FILE]``: a verified deployable file.

Writes the file and ``FILE.json`` (names, dynamic axes, state pairs, verification numbers)
and prints that description; see :mod:`rnnkit.export`.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser"]


def _atol(text: str) -> float:
    """``--atol``: :func:`rnnkit.export.check_atol`'s rule (a finite number >= 0: ``nan``
    would make verification always pass), as an argparse error."""
    from rnnkit.export import check_atol

    try:
        return check_atol(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}") from None


def _export(a: argparse.Namespace) -> int:
    from rnnkit.export import export_checkpoint

    info = export_checkpoint(a.checkpoint, a.format, a.out, verify=not a.no_verify, atol=a.atol,
                             opset=a.opset)
    print(
        json.dumps(
            {k: info[k] for k in ("file", "format", "task", "inputs", "outputs", "state")}
            | ({"max_abs_diff": info["verify"]["max_abs_diff"]} if "verify" in info else {})
        )
    )
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``export`` to an ``argparse`` sub-parser set."""
    h = "export a checkpoint to ONNX or TorchScript (state and lengths as inputs), verified"
    p = subparsers.add_parser("export", help=h, description=h[0].upper() + h[1:] + ".")
    p.add_argument("checkpoint", help="checkpoint directory (a run's best/ or last/)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="default onnx")
    p.add_argument("--out", metavar="FILE", help="output file (default: CKPT.onnx or CKPT.pt)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--atol", type=_atol, default=1e-4, help="verification tolerance (default 1e-4)")
    p.add_argument("--no-verify", action="store_true", help="skip reloading and comparing the file")
    p.set_defaults(func=_export)
    return p
