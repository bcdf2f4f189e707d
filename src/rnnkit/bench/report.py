"""``rnnkit bench`` result documents: check, save, load, and show them (text, Markdown, A vs B).

A result document (schema ``rnnkit-bench-grid/2``) is plain JSON::

    {"schema", "suite", "created", "seconds", "command", "shapes_done",
     "machine": {"cpu", "usable_cores", "torch", "torch_threads", "device", ...},
     "settings": {"threads": [1, 2], "clock", "clock_label", "repeats", "warmup", ...},
     "results": [{"cell", "backend", "shape": {"B", "T", "I", "H"}, "threads", "ran",
                  "ran_forward", "forward": {"median_ms", "p25_ms", "p75_ms", "min_ms",
                  "samples_ms", "calls_per_sample", "peak_bytes"}, "forward_backward": {...},
                  "ratio_lstm": {measure: x}, "ratio_gru": {...},
                  "scaling": {measure: x}, "scaling_lstm": {measure: x}}]}

Schema ``rnnkit-bench-grid/1`` (the files recorded before thread sweeps) has no ``threads``
per row nor scaling: its rows ran at ``machine.torch_threads``. This module needs only the
standard library, so the docs build loads it by path.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["SCHEMA", "SCHEMAS", "CLOCK_LABELS", "validate", "save", "load", "thread_counts",
           "row_threads", "clock_label", "header", "machine_line", "table_rows", "scaling_rows",
           "format_table", "format_scaling", "markdown_table", "markdown_scaling",
           "compare_table", "noise_floor"]

#: version of the result document; bump when a field changes meaning.
SCHEMA = "rnnkit-bench-grid/2"
SCHEMAS = ("rnnkit-bench-grid/1", SCHEMA)
MEASURES = ("forward", "forward_backward")
#: how each clock is named in table headers and in ``settings.clock_label``
CLOCK_LABELS = {
    "wall": "wall clock (elapsed time: what users see)",
    "cpu": "CPU clock (this process's CPU time summed over its threads, for noisy machines: "
           "not the time users wait, and no measure of thread scaling)",
}


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(doc: dict) -> dict:
    """Raise ``ValueError`` naming the first field that breaks the schema; return ``doc``."""
    def need(cond, where, what):
        if not cond:
            raise ValueError(f"{where}: expected {what}")

    need(isinstance(doc, dict), "document", "a JSON object")
    need(doc.get("schema") in SCHEMAS, "schema", f"one of {list(SCHEMAS)}, "
         f"got {doc.get('schema')!r}")
    for key in ("machine", "settings", "results"):
        need(isinstance(doc.get(key), (dict, list)), key, "a value (missing)")
    for key in ("cpu", "torch", "torch_threads", "device"):
        need(key in doc["machine"], f"machine.{key}", "a value (missing)")
    for key in ("repeats", "clock"):
        need(key in doc["settings"], f"settings.{key}", "a value (missing)")
    need(isinstance(doc["results"], list) and doc["results"], "results", "a non-empty list")
    for i, r in enumerate(doc["results"]):
        at = f"results[{i}]"
        for key in ("cell", "backend", "shape", "ratio_lstm"):
            need(key in r, f"{at}.{key}", "a value (missing)")
        if doc["schema"] == SCHEMA:
            need(isinstance(r.get("threads"), int), f"{at}.threads", "an int")
        for m in MEASURES:
            e = r.get(m)
            need(isinstance(e, dict), f"{at}.{m}", "an object of timings")
            need(_num(e.get("median_ms")) and e["median_ms"] > 0, f"{at}.{m}.median_ms",
                 f"a positive number, got {e.get('median_ms')!r}")
    return doc


def save(doc: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(validate(doc), indent=1) + "\n")
    return path


def load(path: str | Path) -> dict:
    """A saved document, checked; a one-line ``ValueError`` naming the file if it is not one."""
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


# ------------------------------------------------------------------ reading
def row_threads(doc: dict, r: dict) -> int:
    """The torch threads a row ran with (schema 1: the machine's, for every row)."""
    return r.get("threads", doc["machine"]["torch_threads"])


def thread_counts(doc: dict) -> list[int]:
    return sorted({row_threads(doc, r) for r in doc["results"]})


def clock_label(doc: dict) -> str:
    st = doc["settings"]
    return st.get("clock_label") or CLOCK_LABELS.get(st["clock"], st["clock"])


def _shape(r: dict) -> str:
    sh = r["shape"]
    return f"B={sh['B']} T={sh['T']} I={sh['I']} H={sh['H']}"


def _name(backend: str) -> str:
    """Today's name of a backend in a results file ("native" was torch's kernels' old name)."""
    return "torch" if backend == "native" else backend


def _ran(r: dict) -> str:
    """What ran: one backend, or ``inference/training`` where auto picks differently."""
    ran, fwd = _name(r["ran"]), _name(r.get("ran_forward", r["ran"]))
    return ran if fwd == ran else f"{fwd}/{ran}"


def header(doc: dict) -> str:
    st, n = doc["settings"], thread_counts(doc)
    return (f"Clock: {clock_label(doc)}. Torch threads: {', '.join(map(str, n))}. Median of "
            f"{st['repeats']} interleaved repeats after {st.get('warmup', '?')} warm-up; "
            "x/LSTM, x/GRU: time over torch.nn.LSTM's/GRU's at the same shape and threads "
            "(below 1: faster).")


def machine_line(doc: dict) -> str:
    m = doc["machine"]
    n = m["torch_threads"]
    s = (f"{m['cpu']} ({m['device']}), {m.get('usable_cores')} cores usable, torch {m['torch']} "
         f"(default {n} thread{'s' if n != 1 else ''}), rnnkit {m.get('rnnkit')}, "
         f"Python {m.get('python')}")
    if m.get("gpu"):
        s += f", {m['gpu']} (CUDA {m.get('cuda')})"
    if m.get("git_commit"):
        s += f", commit {m['git_commit']}"
    return s + (f"; load average {m.get('loadavg_start')} at start, "
                f"{m.get('loadavg_end')} at end")


# ------------------------------------------------------------------ tables
def table_rows(doc: dict) -> tuple[list[str], list[list[str]]]:
    """Head and rows of the main table: one row per cell, backend, shape and thread count."""
    head = ["shape", "cell", "backend", "ran", "threads", "fwd ms", "fwd/LSTM", "fwd/GRU",
            "f+b ms", "f+b/LSTM", "f+b/GRU", "f+b MiB"]
    rows = []
    for r in doc["results"]:
        f, fb, rl, rg = r["forward"], r["forward_backward"], r["ratio_lstm"], r.get("ratio_gru")
        mib = "-" if fb.get("peak_bytes") is None else f"{fb['peak_bytes'] / 2**20:.1f}"
        gru = {m: "-" if rg is None else f"{rg[m]:.2f}" for m in MEASURES}
        rows.append([_shape(r), r["cell"], _name(r["backend"]), _ran(r), str(row_threads(doc, r)),
                     f"{f['median_ms']:.2f}", f"{rl['forward']:.2f}", gru["forward"],
                     f"{fb['median_ms']:.2f}", f"{rl['forward_backward']:.2f}",
                     gru["forward_backward"], mib])
    return head, rows


def scaling_rows(doc: dict) -> tuple[list[str], list[list[str]]]:
    """Head and rows of the thread-scaling table (no rows with a single thread count).

    Per contender: its forward+backward ms at each count, then for each count N above the
    first: its scaling (time at the first count / time at N) forward and forward+backward,
    beside torch.nn.LSTM's, and ``share xN`` = its f+b scaling / LSTM's f+b scaling.
    """
    counts = thread_counts(doc)
    if len(counts) < 2 or "scaling" not in doc["results"][0]:
        return [], []
    head = ["shape", "cell", "backend"] + [f"f+b ms @{n}" for n in counts]
    for n in counts[1:]:
        head += [f"fwd x{n}", f"LSTM fwd x{n}", f"f+b x{n}", f"LSTM f+b x{n}", f"share x{n}"]
    groups: dict[tuple, dict[int, dict]] = {}
    for r in doc["results"]:
        groups.setdefault((_shape(r), r["cell"], _name(r["backend"])), {})[r["threads"]] = r
    rows = []
    for key, by_n in groups.items():
        row = list(key) + [f"{by_n[n]['forward_backward']['median_ms']:.2f}" if n in by_n else "-"
                           for n in counts]
        for n in counts[1:]:
            r = by_n.get(n)
            if r is None:
                row += ["-"] * 5
                continue
            s, sl = r["scaling"], r["scaling_lstm"]
            share = s["forward_backward"] / sl["forward_backward"]
            row += [f"{s['forward']:.2f}", f"{sl['forward']:.2f}", f"{s['forward_backward']:.2f}",
                    f"{sl['forward_backward']:.2f}", f"{100 * share:.0f}%"]
        rows.append(row)
    return head, rows


def _text(head: list[str], rows: list[list[str]], left: int) -> str:
    """Aligned columns: the first ``left`` to the left, the rest (numbers) to the right."""
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i < left else c.rjust(w)
                               for i, (c, w) in enumerate(zip(x, widths))) for x in [head, *rows])


def _markdown(head: list[str], rows: list[list[str]], left: int) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "".join("---|" if i < left else "---:|" for i in range(len(head)))]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in x) + " |" for x in rows]
    return "\n".join(lines)


def format_table(doc: dict) -> str:
    """The main table as aligned text, under its clock and threads header."""
    return header(doc) + "\n" + _text(*table_rows(doc), left=4)


def format_scaling(doc: dict) -> str:
    """The thread-scaling table as aligned text ("" with a single thread count)."""
    head, rows = scaling_rows(doc)
    if not head:
        return ""
    first = thread_counts(doc)[0]
    return (f"Thread scaling. Clock: {clock_label(doc)}. xN = time at {first} "
            f"thread{'s' if first > 1 else ''} / time at N threads (above 1: faster with more "
            "threads), beside torch.nn.LSTM's own.\n"
            + _text(head, rows, left=3))


def markdown_table(doc: dict) -> str:
    return _markdown(*table_rows(doc), left=4)


def markdown_scaling(doc: dict) -> str:
    head, rows = scaling_rows(doc)
    return _markdown(head, rows, left=3) if head else ""


def compare_table(a: dict, b: dict) -> str:
    """Two runs' time/torch.nn.LSTM side by side (run-to-run spread), as aligned text.

    Rows are matched on shape, cell, backend and threads; rows in only one run are left out.
    """
    head = ["shape", "cell", "backend", "threads", "fwd A", "fwd B", "fwd B-A", "f+b A",
            "f+b B", "f+b B-A"]
    other = {(_shape(r), r["cell"], _name(r["backend"]), row_threads(b, r)): r
             for r in b["results"]}
    rows = []
    for r in a["results"]:
        key = (_shape(r), r["cell"], _name(r["backend"]), row_threads(a, r))
        r2 = other.get(key)
        if r2 is None:
            continue
        row = [*key[:3], str(key[3])]
        for m in MEASURES:
            x, y = r["ratio_lstm"][m], r2["ratio_lstm"][m]
            row += [f"{x:.3f}", f"{y:.3f}", f"{y - x:+.3f}"]
        rows.append(row)
    lines = ["time / torch.nn.LSTM's, run A vs run B" + ("" if rows else
                                                         ": no rows in common")]
    for name, d in (("A", a), ("B", b)):
        lines.append(f"{name}: {clock_label(d)}; {machine_line(d)}")
    if a["settings"]["clock"] != b["settings"]["clock"]:
        lines.append("note: the two runs used different clocks")
    return "\n".join(lines) + "\n" + _text(head, rows, left=3)


def noise_floor(doc: dict, control: str = "torch.nn-copy") -> float | None:
    """Largest ``|time/LSTM - 1|`` of the A/A control (a second torch.nn.LSTM), or None."""
    devs = [abs(r["ratio_lstm"][m] - 1) for r in doc["results"] if r["backend"] == control
            for m in MEASURES]
    return max(devs) if devs else None
