"""Which loops of the compiled scans gcc vectorises, per function, against a recorded list.

The compiled loops are sensitive to gcc's inlining budget: an unrelated helper added to
``compiled/scans.h`` stopped the LayerNorm-LSTM's inference loops from vectorising (a B=1 step
went from 32 to 46 us; docs/kernels.md, "Session 14"). Timing catches that only where someone
times that loop. This script compiles each source of ``rnnkit.kernels.compiled`` with the
extension's own flags plus ``-fopt-info-vec-optimized`` (object files thrown away; the cached
extension is not touched), counts the vectorised loops of each function, and compares the
counts with ``benchmarks/results/vectorised_loops.json``::

    python benchmarks/check_vectorised.py            # exit 1 if a function lost loops
    python benchmarks/check_vectorised.py --record   # after an intended change

Needs the C++ compiler the extension uses (``$CXX`` or ``c++``). A minute or two on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "benchmarks" / "results" / "vectorised_loops.json"
# a function definition at column 0: "static inline void name(", "void name(", "Tensor name("
_DEF = re.compile(r"^(?:static\s+|inline\s+)*[A-Za-z_][\w:<>,*&\s]*?\b([A-Za-z_]\w*)\s*\(")
_VEC = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):\d+: optimized: loop vectorized")


def functions(src: Path) -> list[tuple[int, str]]:
    """``[(first line, name), ...]`` of the function definitions in ``src``, in order."""
    out = []
    for i, line in enumerate(src.read_text().splitlines(), 1):
        m = _DEF.match(line)
        if m:
            out.append((i, m.group(1)))
    return out


def vectorised(src: Path, flags: list[str], includes: list[str]) -> dict[str, int]:
    """``{function: vectorised loops}`` of one source, from gcc's report."""
    cxx = os.environ.get("CXX", "c++")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [cxx, *flags, "-std=c++17", "-fPIC", "-DTORCH_EXTENSION_NAME=check",
               "-D_GLIBCXX_USE_CXX11_ABI=1", *[f"-I{p}" for p in includes],
               "-fopt-info-vec-optimized", "-c", str(src), "-o", str(Path(tmp) / "x.o")]
        res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{src.name}: the compiler failed:\n{res.stderr[-3000:]}")
    defs = functions(src)
    counts: dict[str, int] = {}
    for line in res.stderr.splitlines():
        m = _VEC.match(line)
        if not m or Path(m["file"]).name != src.name:
            continue  # loops of headers are counted where they are inlined, under their caller
        at = int(m["line"])
        name = next((n for first, n in reversed(defs) if first <= at), "<file>")
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _compiler() -> str:
    """The first line of ``$CXX --version`` (or ``c++``)."""
    cxx = os.environ.get("CXX", "c++")
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else cxx


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", action="store_true", help="write the counts as the new record")
    a = ap.parse_args()
    from torch.utils import cpp_extension

    from rnnkit.bench.machine import cpu_model
    from rnnkit.kernels import compiled

    includes = [*cpp_extension.include_paths(), sysconfig.get_paths()["include"]]
    sources = [Path(s) for s in compiled.SOURCES]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        found = dict(zip((s.name for s in sources),
                         pool.map(lambda s: vectorised(s, list(compiled.FLAGS), includes),
                                  sources)))
    where = {"flags": list(compiled.FLAGS), "compiler": _compiler(), "cpu": cpu_model()}
    if a.record:
        RECORD.write_text(json.dumps({**where, "files": found}, indent=1) + "\n")
        print(f"recorded {sum(sum(v.values()) for v in found.values())} loops in {RECORD}")
        return 0
    rec = json.loads(RECORD.read_text())
    for k, v in where.items():  # -march=native: another CPU or compiler vectorises differently
        if rec.get(k) != v:
            print(f"note: recorded with {k} {rec.get(k)!r}, this is {v!r}; counts may differ "
                  "for that reason alone")
    want = rec["files"]
    lost = []
    for f in sorted(set(want) | set(found)):
        for fn in sorted(set(want.get(f, {})) | set(found.get(f, {}))):
            w, g = want.get(f, {}).get(fn, 0), found.get(f, {}).get(fn, 0)
            if g != w:
                print(f"{f} {fn}: {g} vectorised loop(s), recorded {w}")
            if g < w:
                lost.append(f"{f} {fn}")
    total = sum(sum(v.values()) for v in found.values())
    print(f"{total} vectorised loops; " + (f"fewer than recorded in: {', '.join(lost)}" if lost
                                          else "no function has fewer than recorded"))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
