"""Result documents: check, save, load, and show them (rich table, Markdown, run vs run).

A result document (schema ``rnnkit-bench/1``) is plain JSON::

    {"schema", "suite", "created", "seconds", "command",
     "machine": {"cpu", "torch", "torch_threads", ...},
     "settings": {"repeats", "warmup", "baseline", "measures", ...},
     "results": [{"cell", "shape": {"B", "T", "I", "H"}, "contender", "backend",
                  "<measure>": {"median_ms", "p25_ms", "p75_ms", "min_ms", "samples_ms",
                                "calls_per_sample", "peak_bytes", "ratio", "peak_ratio"}}]}
"""
from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["validate", "save", "load", "rich_table", "markdown_table", "compare_table",
           "machine_line", "noise_floor", "target_check"]

_MEASURE_KEYS = ("median_ms", "p25_ms", "p75_ms", "min_ms", "samples_ms", "calls_per_sample",
                 "peak_bytes", "ratio", "peak_ratio")
_LABELS = {"forward": "fwd", "forward_backward": "fwd+bwd"}


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(doc: dict) -> dict:
    """Raise ``ValueError`` naming the first field that breaks the schema; return ``doc``."""
    from .layers import SCHEMA

    def need(cond, where, what):
        if not cond:
            raise ValueError(f"{where}: expected {what}")

    need(isinstance(doc, dict), "document", "a JSON object")
    need(doc.get("schema") == SCHEMA, "schema", f"{SCHEMA!r}, got {doc.get('schema')!r}")
    for key in ("suite", "created", "machine", "settings", "results"):
        need(key in doc, key, "a value (missing)")
    for key in ("cpu", "torch", "torch_threads", "device"):
        need(key in doc["machine"], f"machine.{key}", "a value (missing)")
    st = doc["settings"]
    for key in ("repeats", "warmup", "baseline", "measures"):
        need(key in st, f"settings.{key}", "a value (missing)")
    measures, baseline = st["measures"], st["baseline"]
    need(isinstance(doc["results"], list) and doc["results"], "results", "a non-empty list")
    for i, r in enumerate(doc["results"]):
        at = f"results[{i}]"
        for key in ("cell", "contender", "shape"):
            need(key in r, f"{at}.{key}", "a value (missing)")
        need(all(isinstance(r["shape"].get(k), int) for k in "BTIH"), f"{at}.shape",
             f"integer B, T, I and H, got {r['shape']}")
        for m in measures:
            e = r.get(m)
            need(isinstance(e, dict), f"{at}.{m}", "an object of timings")
            for key in _MEASURE_KEYS:
                need(key in e, f"{at}.{m}.{key}", "a value (missing)")
            need(_num(e["median_ms"]) and e["median_ms"] > 0, f"{at}.{m}.median_ms",
                 f"a positive number, got {e['median_ms']!r}")
            need(len(e["samples_ms"]) == st["repeats"], f"{at}.{m}.samples_ms",
                 f"{st['repeats']} samples (settings.repeats), got {len(e['samples_ms'])}")
            need(e["p25_ms"] <= e["median_ms"] <= e["p75_ms"], f"{at}.{m}",
                 "p25_ms <= median_ms <= p75_ms")
            need(_num(e["ratio"]) and e["ratio"] > 0, f"{at}.{m}.ratio",
                 f"a positive number, got {e['ratio']!r}")
            need(e["peak_bytes"] is None or (isinstance(e["peak_bytes"], int)
                                             and e["peak_bytes"] >= 0),
                 f"{at}.{m}.peak_bytes", f"None or bytes >= 0, got {e['peak_bytes']!r}")
            if r["contender"] == baseline:
                need(
                    e["ratio"] == 1.0, f"{at}.{m}.ratio", f"1.0 for the baseline, got {e['ratio']}"
                )
    return doc


def save(doc: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(validate(doc), indent=1) + "\n")
    return path


def load(path: str | Path) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}:{e.colno}: not JSON ({e.msg})") from None
    try:
        return validate(doc)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


# ------------------------------------------------------------------ formatting
def machine_line(doc: dict) -> str:
    m = doc["machine"]
    s = (f"{m['cpu']}, {m.get('usable_cores')} cores usable ({m.get('logical_cores')} logical), "
         f"torch {m['torch']} with {m['torch_threads']} threads, Python {m.get('python')}")
    if m.get("gpu"):
        s += f", {m['gpu']} (CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')})"
    if m.get("loadavg_start") is not None:
        s += f"; load average {m['loadavg_start'][0]} at start, "
        s += f"{(m.get('loadavg_end') or ['?'])[0]} at end"
    return s


def _mib(b) -> str:
    return "-" if b is None else f"{b / 2**20:.1f}"


def _spread(e: dict) -> float:
    """Half the interquartile range, relative to the median."""
    return (e["p75_ms"] - e["p25_ms"]) / (2 * e["median_ms"])


def _rows(doc: dict):
    """(shape label, row) in document order."""
    for r in doc["results"]:
        sh = r["shape"]
        yield f"B={sh['B']} T={sh['T']} I={sh['I']} H={sh['H']}", r


def rich_table(doc: dict):
    """A ``rich.table.Table`` of times (median ± half-IQR), ratios and peak memory."""
    from rich.table import Table

    st = doc["settings"]
    t = Table(title=f"{doc['suite']}: median of {st['repeats']} interleaved repeats "
                    f"({st.get('clock', 'wall')} clock), ratio = time / {st['baseline']}")
    for col in ("shape", "cell", "contender"):
        t.add_column(col)
    for m in st["measures"]:
        t.add_column(f"{_LABELS.get(m, m)} ms", justify="right")
        t.add_column("ratio", justify="right")
    for m in st["measures"]:
        t.add_column(f"{_LABELS.get(m, m)} peak MiB", justify="right")
    last = None
    for label, r in _rows(doc):
        if last is not None and label != last:
            t.add_section()
        last = label
        cells = [label, r["cell"], r["contender"]]
        for m in st["measures"]:
            e = r[m]
            ratio = f"{e['ratio']:.2f}"
            if r["contender"] != st["baseline"] and e["ratio"] > 1.05:
                ratio = f"[bold]{ratio}[/bold]"
            cells += [f"{e['median_ms']:.2f} ±{100 * _spread(e):.0f}%", ratio]
        cells += [_mib(r[m]["peak_bytes"]) for m in st["measures"]]
        t.add_row(*cells)
    return t


def markdown_table(doc: dict) -> str:
    """The same table in Markdown, for README files."""
    st = doc["settings"]
    head = ["shape", "cell", "contender"]
    for m in st["measures"]:
        head += [f"{_LABELS.get(m, m)} ms", "ratio"]
    head += [f"{_LABELS.get(m, m)} peak MiB" for m in st["measures"]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in _rows(doc):
        cells = [label, r["cell"], r["contender"]]
        for m in st["measures"]:
            e = r[m]
            cells += [f"{e['median_ms']:.2f} ±{100 * _spread(e):.0f}%", f"{e['ratio']:.2f}"]
        cells += [_mib(r[m]["peak_bytes"]) for m in st["measures"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_table(a: dict, b: dict):
    """Ratios of two runs side by side (run-to-run spread), as a ``rich.table.Table``."""
    from rich.table import Table

    measures = a["settings"]["measures"]
    t = Table(title="ratio to baseline, run A vs run B")
    for col in ("shape", "cell", "contender"):
        t.add_column(col)
    for m in measures:
        for col in ("A", "B", "B-A"):
            t.add_column(f"{_LABELS.get(m, m)} {col}", justify="right")
    other = {(lab, r["cell"], r["contender"]): r for lab, r in _rows(b)}
    for label, r in _rows(a):
        r2 = other.get((label, r["cell"], r["contender"]))
        if r2 is None:
            continue
        cells = [label, r["cell"], r["contender"]]
        for m in measures:
            x, y = r[m]["ratio"], r2[m]["ratio"]
            cells += [f"{x:.3f}", f"{y:.3f}", f"{y - x:+.3f}"]
        t.add_row(*cells)
    return t


def noise_floor(doc: dict, control: str = "torch.nn-copy") -> float | None:
    """Largest ``|ratio - 1|`` of the A/A control (same code as the baseline), or None."""
    devs = [abs(r[m]["ratio"] - 1) for _, r in _rows(doc) if r["contender"] == control
            for m in doc["settings"]["measures"]]
    return max(devs) if devs else None


def target_check(doc: dict, contender: str = "rnnkit-auto", limit: float = 1.05):
    """``(met, worst)``: whether every ratio of ``contender`` is <= ``limit``, and the worst one.

    ``worst`` is ``(ratio, cell, shape label, measure)``, or None if the contender is absent.
    """
    worst = None
    for label, r in _rows(doc):
        if r["contender"] != contender:
            continue
        for m in doc["settings"]["measures"]:
            if worst is None or r[m]["ratio"] > worst[0]:
                worst = (r[m]["ratio"], r["cell"], label, m)
    return (worst is not None and worst[0] <= limit), worst
