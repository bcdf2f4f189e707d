"""Walk the documentation as a new user would: run every ``rnnkit`` command the pages show.

``tests/docs/test_docs_walk.py`` holds the plan (which pages, how each command is shortened,
what each page promises, which commands cannot run here and why); this module holds the
mechanics:

- :func:`walk_commands` finds every shell line of a page's ``bash`` blocks that calls
  ``rnnkit`` (``\\`` continuations joined), with its page and line;
- :func:`split_shell` / :func:`rewrite` turn such a line into the line the walk runs: the same
  text, except that ``--data-dir ../shared/datasets`` points at generated data, the plan's
  arguments are appended to each ``rnnkit`` command (``--set trainer.max_steps=N``, ``--steps N``,
  a ``--data-dir`` where the page has none) and ``python -m pip install ... &&`` is dropped (the
  walk runs in the installed package);
- :func:`make_datasets` / :func:`make_user_files` write tiny files in the formats the readers
  expect (never a copy of ``../shared/datasets``): PTB, IMDB CSV, UD CoNLL-U, Multi30k, FSDD WAV,
  NAB, the airline-passengers CSV, and the users' own files the pages name (``notes.txt``,
  ``topics.csv``, ``my_sensor.csv``, ``my_clips/``, ...);
- :func:`run_line` runs one line with ``bash -o pipefail -c`` in the walk's working directory
  (links to ``configs/`` etc., as :mod:`docs_blocks` does) and reports the run directories it
  created;
- :func:`promised_paths` reads what a page says a command writes (``--out/--plot/--csv/--output``
  arguments, a ``# run dir: a, b`` comment, an "It writes a run directory, `X`" table) and
  :func:`output_shape` the shape of a recorded output block (lines, tab-separated fields).
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from docs_blocks import DOCS, LINKED, ROOT, Block, parse_blocks

__all__ = ["WalkCommand", "walk_pages", "walk_commands", "split_shell", "rewrite", "run_line",
           "make_datasets", "make_user_files", "promised_paths", "output_shape", "RunResult",
           "prepare_workdir", "walk_env"]

SHELL_LANGS = ("bash", "sh", "shell", "console")
#: arguments whose value is a file or folder the command writes
WRITES = ("--out", "--plot", "--csv", "--output", "--report-dir")


def walk_pages() -> list[Path]:
    """README, getting started, every pipeline page, every how-to page (in that order)."""
    return [ROOT / "README.md", DOCS / "getting-started.md",
            *sorted((DOCS / "pipelines").glob("*.md")), *sorted((DOCS / "howto").glob("*.md"))]


def rel(page: Path) -> str:
    return str(Path(page).resolve().relative_to(ROOT))


@dataclass
class WalkCommand:
    page: str            # relative to the repository root
    line: int            # 1-based line of the page
    text: str            # the shell line as the page shows it (continuations joined)
    block: Block
    comment: str = ""    # the trailing ``# ...`` comment, if any

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def command(self) -> str:
        """The line without its comment."""
        return self.text.split(" #")[0].strip() if self.comment else self.text.strip()


def walk_commands(page: Path) -> list[WalkCommand]:
    """Every line of the page's shell blocks that mentions ``rnnkit`` as a word."""
    r = rel(page)
    out = []
    for b in parse_blocks(Path(page).read_text(encoding="utf-8"), r):
        if b.lang not in SHELL_LANGS:
            continue
        raw = b.code.splitlines()
        k = 0
        while k < len(raw):
            start, text = k, raw[k]
            while text.rstrip().endswith("\\") and k + 1 < len(raw):
                k += 1
                text = text.rstrip()[:-1] + " " + raw[k].strip()
            k += 1
            segments, _, comment = split_shell(text)
            if any(_is_rnnkit_word(s) for s in segments):
                out.append(WalkCommand(r, b.line + 1 + start, text.strip(), b, comment))
    return out


def _is_rnnkit_word(segment: str) -> bool:
    try:
        return "rnnkit" in shlex.split(segment)
    except ValueError:
        return False


def split_shell(line: str) -> tuple[list[str], list[str], str]:
    """``(segments, separators, comment)`` of a shell line, split at unquoted ``&& || | ;``.

    ``separators[i]`` follows ``segments[i]`` (one fewer than the segments); the comment is the
    text from an unquoted ``#`` that starts a word.
    """
    segs, seps, cur, quote, i = [], [], [], None, 0
    comment = ""
    while i < len(line):
        c = line[i]
        if quote:
            cur.append(c)
            if c == "\\" and quote == '"' and i + 1 < len(line):
                cur.append(line[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            cur.append(c)
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            comment = line[i + 1:].strip()
            break
        elif line.startswith(("&&", "||"), i):
            segs.append("".join(cur))
            seps.append(line[i:i + 2])
            cur = []
            i += 1
        elif c in "|;":
            segs.append("".join(cur))
            seps.append(c)
            cur = []
        else:
            cur.append(c)
        i += 1
    segs.append("".join(cur))
    return [s.strip() for s in segs], seps, comment


def _argv(segment: str) -> list[str] | None:
    """The rnnkit arguments of a segment that runs rnnkit (``VAR=x`` prefixes allowed), else None."""
    try:
        words = shlex.split(segment)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words = words[1:]
    if words[:3] == ["python", "-m", "rnnkit"]:
        return words[3:]
    return words[1:] if words[:1] == ["rnnkit"] else None


def is_pip_install(segment: str) -> bool:
    return bool(re.match(r"(python3? -m )?pip3? install\b", segment.strip()))


def rewrite(cmd: WalkCommand, data_dir: Path, extra) -> tuple[str, list[list[str]]]:
    """The line the walk runs for ``cmd`` and the argv of each rnnkit command in it.

    ``extra(argv) -> list[str]`` gives the arguments appended to a command (the plan's
    shortening and added ``--data-dir``). ``../shared/datasets`` in a ``--data-dir`` value
    becomes ``data_dir``. A ``pip install`` segment is dropped with its separator.
    """
    segments, seps, _ = split_shell(cmd.text)
    parts: list[str] = []
    argvs: list[list[str]] = []
    for k, seg in enumerate(segments):
        if is_pip_install(seg):
            continue
        argv = _argv(seg)
        if argv is not None:
            seg = re.sub(r"(--data-dir[= ])\.\./shared/datasets(?=\s|$)",
                         lambda m: m.group(1) + shlex.quote(str(data_dir)), seg)
            add = list(extra(argv))
            if add:
                seg = seg + " " + " ".join(shlex.quote(a) for a in add)
            argvs.append(_argv(seg))
        if parts:
            parts.append(seps[k - 1])
        parts.append(seg)
    return " ".join(parts), argvs


# --------------------------------------------------------------------------- running


def prepare_workdir(work: Path) -> None:
    """Links to the repository's configs/, experiments/, benchmarks/, docs/ (as docs_blocks)."""
    work.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if (ROOT / name).exists() and not (work / name).exists():
            os.symlink(ROOT / name, work / name)


def walk_env(home: Path) -> dict[str, str]:
    """The commands' environment: no $RNNKIT_DATA, an empty cache (so nothing is found but the
    generated data), a non-interactive plot backend and one BLAS/OpenMP thread (the walk's time
    then does not depend on how busy the machine is; recipes that set ``trainer.threads`` still
    choose their own)."""
    env = {k: v for k, v in os.environ.items() if k != "RNNKIT_DATA"}
    env.update(XDG_CACHE_HOME=str(home / "cache"), MPLBACKEND="Agg", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", COLUMNS="120", PYTHONUNBUFFERED="1", NO_COLOR="1")
    return env


@dataclass
class RunResult:
    line: str
    returncode: int
    output: str
    seconds: float
    new_runs: list[str] = field(default_factory=list)


def _runs(work: Path) -> set[str]:
    return {f"runs/{p.name}" for p in (work / "runs").glob("*") if p.is_dir()} \
        if (work / "runs").is_dir() else set()


def run_line(line: str, work: Path, env: dict[str, str], timeout: float = 300) -> RunResult:
    """Run one shell line in ``work``; stdout and stderr together."""
    before = _runs(work)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=work, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
        rc, out = -9, out + f"\n[the walk stopped it after {timeout:.0f} s]"
    return RunResult(line, rc, out, time.perf_counter() - t0, sorted(_runs(work) - before))


# --------------------------------------------------------------------------- what pages promise


def promised_paths(cmd: WalkCommand, argv: list[str]) -> list[str]:
    """Files a command line itself says it writes: the value of each ``--out``, ``--plot``,
    ``--csv``, ``--output``, ``--report-dir``; and ``# run dir: a, b`` comments as ``{run}/a``."""
    out = []
    for k, w in enumerate(argv):
        for flag in WRITES:
            if w == flag and k + 1 < len(argv):
                out.append(argv[k + 1])
            elif w.startswith(flag + "="):
                out.append(w.split("=", 1)[1])
    m = re.match(r"run dir:\s*(.+)", cmd.comment)
    if m:
        out += ["{run}/" + p.strip().strip("`") for p in m.group(1).split(",") if p.strip()]
    return out


def run_dir_tables(page: Path) -> dict[str, list[str]]:
    """``{run dir: [paths]}`` from "It writes a run directory, `DIR` ...:" and the table after it."""
    lines = Path(page).read_text(encoding="utf-8").splitlines()
    found: dict[str, list[str]] = {}
    for k, line in enumerate(lines):
        m = re.search(r"[Ii]t writes a run directory, `([^`]+)`", line)
        if not m:
            continue
        paths = []
        for row in lines[k + 1:k + 40]:
            if row.startswith("|"):
                cell = row.split("|")[1].strip()
                if cell.startswith("`") and cell.endswith("`"):
                    paths.append(cell.strip("`"))
            elif paths:
                break
        found[m.group(1).rstrip("/")] = paths
    return found


def recorded_output(page: Path, block: Block) -> str | None:
    """The untitled ``text`` block right after a shell block: its recorded output, if any."""
    text = Path(page).read_text(encoding="utf-8")
    blocks = parse_blocks(text, block.page)
    lines = text.splitlines()
    for a, b in zip(blocks, blocks[1:]):
        if a.line == block.line and b.lang == "text" and not b.attrs:
            if all(not s.strip() for s in lines[a.extra["end"]:b.line - 1]):
                return b.code
    return None


def output_shape(text: str) -> list[int]:
    """Tab-separated fields per non-empty line: what a recorded ``predict`` output promises."""
    return [len(s.split("\t")) for s in text.splitlines() if s.strip()]


# --------------------------------------------------------------------------- generated data

_WORDS = ("the cat dog sat on a mat ran fast slow big small red blue house tree river car road "
          "saw her him we they it is was and but with under over near far old new").split()


def _rng(seed: int):
    import numpy as np

    return np.random.default_rng(seed)


def _sentences(n: int, seed: int, lo: int = 4, hi: int = 9) -> list[list[str]]:
    rng = _rng(seed)
    return [[_WORDS[j] for j in rng.integers(0, len(_WORDS), rng.integers(lo, hi))] for _ in range(n)]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _conllu(sents: list[list[str]]) -> str:
    tags = {"the": ("DET", "DT"), "a": ("DET", "DT"), "on": ("ADP", "IN"), "under": ("ADP", "IN"),
            "over": ("ADP", "IN"), "near": ("ADP", "IN"), "with": ("ADP", "IN"),
            "and": ("CCONJ", "CC"), "but": ("CCONJ", "CC"), "saw": ("VERB", "VBD"),
            "sat": ("VERB", "VBD"), "ran": ("VERB", "VBD"), "is": ("AUX", "VBZ"),
            "was": ("AUX", "VBD"), "her": ("PRON", "PRP"), "him": ("PRON", "PRP"),
            "we": ("PRON", "PRP"), "they": ("PRON", "PRP"), "it": ("PRON", "PRP")}
    adj = {"fast", "slow", "big", "small", "red", "blue", "old", "new", "far"}
    out = []
    for k, s in enumerate(sents):
        out.append(f"# sent_id = s{k}\n# text = {' '.join(s)} .")
        for i, w in enumerate([*s, "."], 1):
            up, xp = tags.get(w, ("ADJ", "JJ") if w in adj else ("NOUN", "NN"))
            if w == ".":
                up, xp = "PUNCT", "."
            out.append(f"{i}\t{w}\t{w}\t{up}\t{xp}\t_\t0\tdep\t_\t_")
        out.append("")
    return "\n".join(out) + "\n"


def _wav(path: Path, freq: float, seconds: float, seed: int, sr: int = 8000) -> None:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * _rng(seed).standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y.astype("float32"), sr)


def _sensor_csv(n: int, seed: int, anomaly_at: int | None = None) -> str:
    import pandas as pd

    rng = _rng(seed)
    v = 50 + 10 * _np_sin(n, 48) + rng.normal(0, 0.5, n)
    if anomaly_at is not None:
        v[anomaly_at:anomaly_at + 8] += 25
    ts = pd.date_range("2024-01-01", periods=n, freq="5min")
    return "timestamp,value\n" + "".join(f"{t:%Y-%m-%d %H:%M:%S},{x:.4f}\n" for t, x in zip(ts, v))


def _np_sin(n: int, period: float):
    import numpy as np

    return np.sin(2 * np.pi * np.arange(n) / period)


def _monthly_csv(months: int, start: str = "1949-01") -> str:
    """The airline-passengers layout: ``"Month","Passengers"``, ``1949-01,112``."""
    import numpy as np
    import pandas as pd

    idx = pd.period_range(start, periods=months, freq="M")
    t = np.arange(months)
    y = (120 + 2.2 * t) * (1 + 0.15 * np.sin(2 * np.pi * t / 12)) + _rng(3).normal(0, 3, months)
    return '"Month","Passengers"\n' + "".join(f'"{p}",{int(round(v))}\n' for p, v in zip(idx, y))


def make_datasets(root: Path) -> Path:
    """Tiny known datasets under ``root``, laid out as ``--data-dir`` expects them."""
    # PTB (Mikolov's text: lowercase words, <unk>, one sentence per line)
    for split, n in (("train", 1500), ("valid", 150), ("test", 150)):
        _write(root / "ptb" / f"ptb.{split}.txt",
               "".join(" " + " ".join(s) + " \n" for s in _sentences(n, hash(split) % 97)))
    # IMDB as CSV (text,label with 1 = positive, as ../shared/datasets/imdb/*.csv.gz)
    good, bad = ("wonderful moving great superb", "boring awful dull terrible")
    for split, n in (("train", 240), ("test", 80)):
        rng, rows = _rng(len(split)), ["text,label"]
        for k in range(n):
            label = k % 2
            ws = [_WORDS[j] for j in rng.integers(0, len(_WORDS), 12)]
            ws.insert(int(rng.integers(0, 12)), (good if label else bad).split()[k % 4])
            rows.append(f'"A film. {" ".join(ws)}.",{label}')
        _write(root / "imdb" / f"{split}.csv", "\n".join(rows) + "\n")
    # UD English EWT (CoNLL-U)
    for split, n, seed in (("train", 300, 1), ("dev", 40, 2), ("test", 40, 3)):
        _write(root / "ud_english_ewt" / f"en_ewt-ud-{split}.conllu", _conllu(_sentences(n, seed)))
    # Multi30k task 1 raw (line-aligned .de/.en)
    lex = dict(zip(_WORDS, "der katze hund sass auf ein matte lief schnell langsam gross klein rot "
                            "blau haus baum fluss auto strasse sah sie ihn wir sie es ist war und "
                            "aber mit unter ueber nahe weit alt neu".split()))
    for split, n, seed in (("train", 400, 4), ("val", 40, 5), ("test_2016_flickr", 40, 6)):
        sents = _sentences(n, seed)
        _write(root / "multi30k" / f"{split}.en", "".join(" ".join(s).capitalize() + ".\n" for s in sents))
        _write(root / "multi30k" / f"{split}.de",
               "".join(" ".join(lex[w] for w in s).capitalize() + ".\n" for s in sents))
    # FSDD: {label}_{speaker}_{index}.wav at 8 kHz; index < 5 is the test split, and 10% of
    # the rest per class is held out for validation (the connected digits of asr: 5-9
    # validation, 10 and up training, so there are 12)
    for label in range(10):
        for speaker in ("theo", "lucas"):
            for index in range(12):
                _wav(root / "fsdd" / "recordings" / f"{label}_{speaker}_{index}.wav",
                     300 + 150 * label, 0.2 + 0.01 * index, label * 100 + index)
    # JSB Chorales: {"train"|"valid"|"test": [piece, ...]}, a piece a list of steps of MIDI notes
    _write(root / "jsb_chorales" / "jsb-chorales-quarter.json",
           json.dumps({split: _chorales(n, seed) for split, n, seed in
                       (("train", 12, 21), ("valid", 4, 22), ("test", 4, 23))}))
    # NAB: data/<family>/<file>.csv (timestamp,value) and labels/combined_{windows,labels}.json
    windows, labels = {}, {}
    for family, seed in (("realKnownCause", 7), ("realAWSCloudwatch", 8)):
        key = f"{family}/generated_{family.lower()}.csv"
        n, at = 700, 560
        _write(root / "nab" / "data" / key, _sensor_csv(n, seed, anomaly_at=at))
        import pandas as pd

        ts = pd.date_range("2024-01-01", periods=n, freq="5min")
        windows[key] = [[f"{ts[at - 10]:%Y-%m-%d %H:%M:%S}.000000",
                         f"{ts[at + 20]:%Y-%m-%d %H:%M:%S}.000000"]]
        labels[key] = [f"{ts[at]:%Y-%m-%d %H:%M:%S}"]
    _write(root / "nab" / "labels" / "combined_windows.json", json.dumps(windows, indent=1))
    _write(root / "nab" / "labels" / "combined_labels.json", json.dumps(labels, indent=1))
    # the airline passengers (Box & Jenkins series G layout), 12 years monthly
    _write(root / "classic_series" / "airline-passengers.csv", _monthly_csv(144))
    return root


def _chorales(n: int, seed: int) -> list[list[list[int]]]:
    """``n`` pieces of 24-40 steps, each step a chord of 3-4 MIDI notes in 28..71."""
    import numpy as np

    rng = _rng(seed)
    pieces = []
    for _ in range(n):
        root = int(rng.integers(48, 60))
        steps = []
        for _ in range(int(rng.integers(24, 41))):
            root = int(np.clip(root + rng.integers(-2, 3), 40, 64))
            chord = [root - 12, root, root + 4, root + 7][: int(rng.integers(3, 5))]
            steps.append(sorted({int(x) for x in chord}))
        pieces.append(steps)
    return pieces


def make_user_files(work: Path) -> None:
    """The users' own files the pages' commands name, in the formats the pages describe."""
    # own-data: a word-level text file (the page's python block writes a 350-word one; a
    # recipe with batch 64 x bptt 100 needs more than that)
    _write(work / "notes.txt", "".join(" ".join(s) + " .\n" for s in _sentences(2500, 11)))
    # own-data: topics.csv / topics_test.csv (text,label)
    topics = {"sport": "match goal team", "food": "bread soup cheese", "music": "song band guitar"}
    for name, n, seed in (("topics.csv", 90, 12), ("topics_test.csv", 30, 13)):
        rows, rng = ["text,label"], _rng(seed)
        for k in range(n):
            label = list(topics)[k % 3]
            ws = [_WORDS[j] for j in rng.integers(0, len(_WORDS), 8)] + topics[label].split()
            rng.shuffle(ws)
            rows.append(f"{' '.join(ws)},{label}")
        _write(work / name, "\n".join(rows) + "\n")
    # own-data: CoNLL-U files
    _write(work / "my-train.conllu", _conllu(_sentences(200, 14)))
    _write(work / "my-test.conllu", _conllu(_sentences(30, 15)))
    # own-data / anomaly detection: timestamp,value CSVs (NAB's format)
    _write(work / "my_sensor.csv", _sensor_csv(800, 16, anomaly_at=700))
    _write(work / "series.csv", _sensor_csv(800, 17, anomaly_at=650))
    # own-data: audio clips, one folder per label
    for label, freq in (("yes", 400.0), ("no", 1200.0)):
        for k in range(8):
            _wav(work / "my_clips" / label / f"{label}_{k}.wav", freq + 20 * k, 0.3, 50 + k)
    # spoken digits: the clip the page predicts
    _wav(work / "7_theo_0.wav", 300 + 150 * 7, 0.3, 99)
    # music: a folder of the users' own MIDI files (four-part chords on a grid)
    import numpy as np

    from rnnkit.data.midi import write_midi
    from rnnkit.data.music import LOWEST_NOTE, NUM_KEYS

    for k, piece in enumerate(_chorales(4, 24)):
        roll = np.zeros((len(piece), NUM_KEYS), dtype=np.uint8)
        for t, notes in enumerate(piece):
            roll[t, [n - LOWEST_NOTE for n in notes]] = 1
        write_midi(roll, work / "my_midi" / f"piece_{k}.mid", steps_per_quarter=4)
    # forecasting: a history file with the recipe's columns, for `forecast predict --data`
    _write(work / "history.csv", _monthly_csv(60, start="1956-01"))


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
