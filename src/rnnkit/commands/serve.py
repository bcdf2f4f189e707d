"""``rnnkit serve CKPT``: an HTTP JSON API over a checkpoint (FastAPI + uvicorn).

::

    rnnkit serve CKPT [--host 127.0.0.1] [--port 8000] [--int8] [--threads 1] [--slots 2]
                      [--max-body-kb 1000] [--max-tokens 1000] [--max-items 100000]
                      [--body-timeout 10]

See :mod:`rnnkit.serve.app` for the endpoints; ``/docs`` serves the OpenAPI page.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def _serve(a: argparse.Namespace) -> int:
    import math

    import torch
    import uvicorn

    from rnnkit.runtime import trim_malloc
    from rnnkit.serve.app import Limits, create_app

    for k in ("port", "threads", "slots", "max_body_kb", "max_tokens", "max_items"):
        if getattr(a, k) < (0 if k == "port" else 1):
            raise ValueError(
                f"--{k.replace('_', '-')} {getattr(a, k)}: expected a positive integer"
            )
    if not (math.isfinite(a.body_timeout) and a.body_timeout > 0):
        raise ValueError(f"--body-timeout {a.body_timeout}: expected a positive number of seconds")
    # the rnnkit command keeps freed memory for training's large per-step buffers; a server's
    # buffers are small and its memory must come back after a burst, so undo that here
    trim_malloc()
    torch.set_num_threads(a.threads)
    if not a.onednn:  # batch-1 recurrent steps: oneDNN's per-call set-up costs ~4x ATen's kernel
        torch.backends.mkldnn.enabled = False
    app = create_app(
        a.checkpoint,
        Limits(
            max_body_bytes=a.max_body_kb * 1000,
            max_tokens=a.max_tokens,
            max_items=a.max_items,
            slots=a.slots,
            body_timeout_s=a.body_timeout,
        ),
        int8=a.int8,
    )
    print(f"rnnkit serve: {a.checkpoint} on http://{a.host}:{a.port} (docs: /docs)", flush=True)
    uvicorn.run(app, host=a.host, port=a.port, log_level=a.log_level, access_log=False)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``serve`` to an ``argparse`` sub-parser set."""
    h = "serve a checkpoint over HTTP: JSON API for generate, predict, forecast and score"
    p = subparsers.add_parser("serve", help=h, description=h[0].upper() + h[1:] + ".")
    p.add_argument("checkpoint", help="checkpoint directory (a run's best/)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--int8", action="store_true", help="dynamic int8 quantisation of LSTM/GRU/Linear"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--slots", type=int, default=2, help="requests running the model at once (default 2)"
    )
    p.add_argument(
        "--max-body-kb", type=int, default=1000, help="largest request body in kB (default 1000)"
    )
    p.add_argument("--max-tokens", type=int, default=1000, help="longest generation (default 1000)")
    p.add_argument(
        "--max-items", type=int, default=100_000, help="longest list in a request (default 100000)"
    )
    p.add_argument("--body-timeout", type=float, default=10.0, metavar="S",
                   help="seconds a request body may take to arrive; then 408 (default 10)")
    p.add_argument(
        "--onednn", action="store_true", help="keep oneDNN's RNN kernels (off by default)"
    )
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    p.set_defaults(func=_serve)
    return p
