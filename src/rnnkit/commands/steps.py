"""``rnnkit build-steps``: compile the fused CPU scans' C step library now.

::

    rnnkit build-steps            # prints the library's path (built once, then cached)
    rnnkit build-steps --force    # rebuild

The LSTM, LayerNorm-LSTM and GRU scans build it on first use anyway
(``rnnkit.kernels.fused._csteps``); this does it ahead of time, e.g. in a container
image, and says why it cannot where there is no working C compiler. rnnkit works
without it: the scans then run their pure-torch steps.
"""
from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def run(a: argparse.Namespace) -> int:
    from rnnkit.kernels.fused import _csteps

    try:
        print(_csteps.build(force=a.force))
    except RuntimeError as e:  # no compiler, or it failed
        raise ValueError(
            f"{e}\n(rnnkit works without it: the fused scans run pure-torch steps)"
        ) from e
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``build-steps`` on the ``rnnkit`` sub-command parsers."""
    p = subparsers.add_parser("build-steps", help="compile the fused CPU scans' C step library "
                              "now and print its path (else it is built on first use)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--force", action="store_true", help="rebuild even if the cached library is there"
    )
    p.set_defaults(func=run)
    return p
