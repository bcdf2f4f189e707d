"""The docs walk: follow the pages as a new user would, running every ``rnnkit`` command.

Pages: README.md (Quick start and what follows it), docs/getting-started.md, every
docs/pipelines/*.md and every docs/howto/*.md, in that order, in one temporary working directory
(with links to configs/, experiments/, benchmarks/, docs/, as the python blocks get), so a
command can use what an earlier one wrote (``rnnkit generate runs/demo-shakespeare/best`` after
``rnnkit demo``; ``--resume runs/ptb_small`` after the PTB run). A line identical to one already
run is run once and its promises checked again.

Each shell line that calls ``rnnkit`` runs through bash as written, with only these changes
(the mechanics are ``scripts/docs/docs_walk.py``):

- ``--data-dir ../shared/datasets`` points at tiny generated data of the same formats (PTB text,
  IMDB CSV, UD CoNLL-U, Multi30k, FSDD WAV, NAB, the airline CSV); where a command needs known
  data and names none, ``--data-dir`` is appended (``DATA_DIR_ADDED``, with the reason);
- a shortening is appended: ``--set trainer.max_steps=N`` (:data:`STEPS`), ``--steps N`` for the
  demos, ``--set model.max_epochs=2`` for anomaly detectors;
- ``python -m pip install ... &&`` is dropped: the walk runs in the installed package.

The users' own files a page names (``notes.txt``, ``topics.csv``, ``my-train.conllu``,
``my_sensor.csv``, ``my_clips/``, ``series.csv``, ``history.csv``, ``7_theo_0.wav``) are
generated in the working directory. Commands that cannot run here are listed, with the reason,
in :data:`NOT_RUNNABLE`; every other line runs, including lines in blocks marked
``<!-- docs: no-run -->`` when the walk has made the checkpoint they use.

After each command the walk checks what the page promises: the files named by ``--out``,
``--plot``, ``--csv``, ``--output``, ``--report-dir`` and by a ``# run dir: a, b`` comment; the
table after "It writes a run directory, `DIR`"; the per-page promises of :data:`PROMISES` (files
and printed lines, where the wording is prose); for ``predict`` blocks with a recorded output,
the same number of lines and tab-separated fields; and for ``curves.png`` the data it is drawn
from (:data:`CURVES`): ``rnnkit.train.monitor.curve_panels`` of ``last/trainer_state.json``'s
history must have the learning-rate and gradient-norm panel and the validation metrics the page
names. Every failure names the page, the line and the command.

Time: the whole walk took 236 s and 304 s in two runs (an earlier one 414 s, when a 2-thread
recipe met another job's benchmarks) on this project's 2-core machine (a 2-core Xeon VM, shared with
another engineer's benchmarks); commands run with one BLAS thread unless their recipe sets
``trainer.threads`` (see ``walk_env``). In session 18, with two training runs and another test
run on the same 2-core AMD EPYC, it took 1104 s of wall time and its commands 495 s of CPU; in
the full suite on the idle machine, 356 s of wall time and 393 s of CPU.
The suite runs in parallel (pytest-xdist, whole files per worker): this file starts first in
one worker (``FIRST`` in tests/conftest.py) while the other takes the rest. On the 2-core AMD
EPYC, from a clean clone with a cold build cache, the walk took 498 s of wall time there and
the whole suite 604 s (948 s on CI in one process before; 646-656 s in parallel while xdist's
default reorder still queued this file 28th).
``test_the_walk_fits_its_budget`` fails it past 900 s of its commands' CPU time (half the
suite's 15 minutes on 2 cores), not wall time, which other jobs on the machine stretch.
"""
from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "docs"))
from docs_walk import (  # noqa: E402
    WalkCommand,
    make_datasets,
    make_user_files,
    output_shape,
    prepare_workdir,
    promised_paths,
    recorded_output,
    rel,
    rewrite,
    run_dir_tables,
    run_line,
    split_shell,
    walk_commands,
    walk_env,
    walk_pages,
)

pytest.importorskip("soundfile")  # the audio pages' clips (the [audio] extra, part of [test])

PAGES = walk_pages()

# --------------------------------------------------------------------------- the plan

#: (page, the command as the page writes it, or a prefix of it) -> why the walk cannot run it
NOT_RUNNABLE = {
    ("README.md", "rnnkit bench --quick"):
        "2-3 minutes of timing loops by design, with no shorter documented form; timings on "
        "a shared CI machine are noise. tests/bench runs the same code on small shapes",
    ("docs/howto/benchmarks.md", "rnnkit bench --quick"):
        "2-3 minutes of timing loops (as README's); tests/bench covers the code",
    ("docs/howto/benchmarks.md", "rnnkit bench --quick --threads 1,2"):
        "timing loops at two thread counts: minutes; tests/bench covers the code",
    ("docs/howto/benchmarks.md", "rnnkit bench --cells lstm,gru,ln_lstm"):
        "large shapes at 1, 4 and 16 threads: tens of minutes on 2 cores",
    ("docs/howto/benchmarks.md", "rnnkit bench --threads 1 --clock cpu"):
        "the full benchmark grid: tens of minutes",
    ("docs/howto/benchmarks.md", "rnnkit bench --compare my_machine.json other.json"):
        "needs two benchmark JSON files, one from another machine",
    ("docs/howto/benchmarks.md", "rnnkit bench --cells lstm,gru --shapes"):
        "--device cuda: needs a GPU",
    ("docs/howto/distributed.md", "rnnkit train configs/ptb_small.yaml --set trainer.devices=4"):
        "4 GPUs",
    ("docs/howto/distributed.md", "torchrun --nproc-per-node 4 --nnodes 2"):
        "two machines with 4 GPUs each",
    ("docs/howto/distributed.md", "srun --ntasks-per-node 4"):
        "a SLURM cluster",
    ("docs/pipelines/text-generation.md", "rnnkit generate runs/exp_shakespeare_char/best"):
        "the recorded 90-minute run's checkpoint (the walk runs the same generate command on "
        "its own shakespeare_char run, line 13)",
    ("docs/pipelines/spoken-digits.md", "rnnkit predict runs/fsdd_standard/best"):
        "the recorded run's checkpoint and the real FSDD recordings (the walk runs line 13's "
        "predict on its own run)",
    ("docs/pipelines/forecasting.md", "rnnkit forecast blend runs/ltsf_etth1_segrnn/best"):
        "a trained LTSF SegRNN on ETTh1 (about 20 minutes of CPU); tests/tasks/"
        "test_forecast_ltsf.py runs the same command on a small SegRNN run",
    ("docs/pipelines/forecasting.md", "rnnkit forecast compare runs/ltsf_etth1_segrnn/blend"):
        "two trained LTSF forecasters on ETTh1 (the blend above and a DLinear run); "
        "tests/tasks/test_forecast_compare.py runs the same command on two small runs",
    ("docs/pipelines/forecasting.md", "rnnkit forecast backtest configs/ltsf_etth1_segrnn.yaml"):
        "two LTSF SegRNN runs on ETTh1 (about 40 minutes of CPU); tests/tasks/"
        "test_forecast_ltsf.py runs a backtest on the protocol with a small DLinear",
    ("docs/pipelines/spoken-digits.md", "rnnkit explain runs/fsdd_standard"):
        "the recorded run's checkpoint and the real FSDD recordings",
}

#: recipe -> the max_steps appended (``--set trainer.max_steps=N``); enough for one logged
#: training step where the page's plot is checked (shakespeare_char logs every 25 steps)
STEPS = {
    "configs/shakespeare_char.yaml": 25,
    "configs/ptb_small.yaml": 20,
    "configs/imdb_bilstm.yaml": 8,
    "configs/ud_ewt_upos.yaml": 8,
    "configs/multi30k_gru_attn.yaml": 8,
    "configs/forecast_airline.yaml": 8,
    "configs/fsdd.yaml": 8,
    "configs/digits_ctc.yaml": 8,
    "configs/jsb_gru.yaml": 8,
    "configs/jsb_gru_nade.yaml": 8,
}
#: commands whose shortening depends on the run before them: (page, command prefix) -> args
EXTRA_BY_COMMAND = {
    # the two resume lines continue the 20-step PTB run: each to a later step, so each resumes
    ("docs/howto/resume.md", "rnnkit train --resume runs/ptb_small"):
        ["--set", "trainer.max_steps=30"],
    ("docs/howto/resume.md", "rnnkit train configs/ptb_small.yaml --resume runs/ptb_small"):
        ["--set", "trainer.max_steps=40"],
    # the page's own text file: a few steps show the recipe reads it (no plot is checked)
    ("docs/howto/own-data.md", "rnnkit train configs/shakespeare_char.yaml --set data.corpus=notes.txt"):
        ["--set", "trainer.max_steps=5"],
    # the DDP check on CPU: two processes, a few steps are enough
    ("docs/howto/distributed.md", "rnnkit train configs/shakespeare_char.yaml --set trainer.devices=2"):
        ["--set", "trainer.max_steps=3"],
}
#: commands that read known data from the default place, ../shared/datasets relative to the
#: working directory (the NAB root; forecast_airline.yaml's data.data_dir): the walk's data is
#: elsewhere, so --data-dir is appended. (A checkpoint remembers its --data-dir: evaluate,
#: predict and a --resume without a recipe need none.)
DATA_DIR_ADDED = {
    ("docs/pipelines/anomaly-detection.md", "rnnkit anomaly nab"),
    ("docs/pipelines/forecasting.md", "rnnkit forecast train configs/forecast_airline.yaml"),
    ("docs/pipelines/forecasting.md", "rnnkit forecast backtest"),
}

#: what a page promises in prose: (page, command prefix) -> files ({run} = the run directory the
#: command made, or its --out) and printed lines (regular expressions, searched per line)
PROMISES = {
    # getting-started's numbered list and recorded output; README: "a progress bar, validation
    # loss and bits per char, a checkpoint under runs/demo-shakespeare/ with curves.png, and a
    # generated sample at the end"
    ("README.md", "python -m pip install -c constraints.txt -e . && rnnkit demo"): {
        "files": ["runs/demo-shakespeare/best", "runs/demo-shakespeare/curves.png"],
        "lines": [r"^validation step \d+ epoch \d+: val_loss [\d.]+\s+val_ppl [\d.]+\s+val_bpc [\d.]+",
                  r"^validation loss [\d.]+ nats/char, [\d.]+ bits/char",
                  r"^checkpoint: runs/demo-shakespeare/best\s+curves: runs/demo-shakespeare/curves.png",
                  r"^sample \(temperature 0\.8, top-k 40, seed 0\):"],
    },
    ("docs/getting-started.md", "rnnkit demo --out runs/docs_demo"): {
        "files": ["{run}/best/model.safetensors", "{run}/best/config.json", "{run}/best/vocab.json",
                  "{run}/last/trainer_state.json", "{run}/last/trainer_state.safetensors",
                  "{run}/curves.png", "{run}/summary.json", "{run}/logs/csv", "{run}/logs/tensorboard"],
        "lines": [r"^rnnkit demo: char-level LSTM \(2x256\) on tinyshakespeare",
                  r"^epoch \d+ batch \d+/\d+ step 25 loss [\d.]+ lr [\d.e-]+ [\d,]+ tokens/s",
                  r"^validation step \d+ epoch \d+: val_loss [\d.]+\s+val_ppl [\d.]+\s+val_bpc [\d.]+",
                  r"^validation loss [\d.]+ nats/char, [\d.]+ bits/char \(best [\d.]+\)",
                  r"^checkpoint: runs/docs_demo/best\s+curves: runs/docs_demo/curves.png",
                  r"^sample \(temperature 0\.8, top-k 40, seed 0\):", r"^ROMEO:"],
    },
    ("docs/getting-started.md", "rnnkit generate runs/demo-shakespeare/best"): {
        "lines": [r"^ROMEO:"]},
    ("docs/getting-started.md", "rnnkit demo adding"): {
        "files": ["runs/demo-adding/results.json", "runs/demo-adding/table.md",
                  "runs/demo-adding/gradient_flow.png"],
        "lines": [r"^\s*(rnn_tanh|gru|lstm)\s+test MSE [\d.]+"],
    },
    # "A run directory holds best/ and last/ checkpoints (safetensors + JSON, with vocab.json),
    # curves.png, summary.json and CSV/TensorBoard logs"
    ("docs/pipelines/text-generation.md", "rnnkit train configs/shakespeare_char.yaml"): {
        "files": ["{run}/best/model.safetensors", "{run}/best/config.json", "{run}/best/vocab.json",
                  "{run}/last", "{run}/curves.png", "{run}/summary.json", "{run}/logs/csv",
                  "{run}/logs/tensorboard"]},
    ("docs/pipelines/text-generation.md", "rnnkit train configs/ptb_small.yaml"): {
        "files": ["{run}/best/vocab.json", "{run}/last", "{run}/curves.png", "{run}/summary.json"]},
    ("docs/pipelines/text-generation.md", "rnnkit generate runs/shakespeare_char/best"): {
        "lines": [r"^ROMEO:"]},
    # "rnnkit evaluate reports accuracy, macro F1 and per-class precision and recall"
    ("docs/pipelines/text-classification.md", "rnnkit evaluate runs/imdb_bilstm/best"): {
        "lines": [r"acc", r"(?i)macro.?f1|f1_macro|macro_f1", r"(?i)precision", r"(?i)recall"]},
    # "score writes timestamp, value, anomaly_score[, is_anomaly]"
    ("docs/pipelines/anomaly-detection.md", "rnnkit anomaly train series.csv"): {
        "files": ["ckpt"], "lines": [r"timestamp,value,anomaly_score,is_anomaly"]},
    # "NAB scores + plots": one plot per file
    ("docs/pipelines/anomaly-detection.md", "rnnkit anomaly nab configs/"): {
        "files": ["runs/nab/*/plots/realKnownCause/*.png", "runs/nab/*/plots/realAWSCloudwatch/*.png",
                  "runs/nab/*/realKnownCause/*.csv"]},
    ("docs/howto/own-data.md", "rnnkit anomaly train my_sensor.csv"): {
        "files": ["ckpt", "scores.csv"]},
    # "(file, label, probability, then the runner-up and its probability.)"
    ("docs/pipelines/spoken-digits.md", "rnnkit predict runs/fsdd/best 7_theo_0.wav --top-k 2"): {
        "lines": [r"^7_theo_0\.wav\t\d\t[\d.]+\t\d [\d.]+$"]},
    # the resumed runs reach their later step
    ("docs/howto/resume.md", "rnnkit train --resume runs/ptb_small"): {
        "files": ["runs/ptb_small/last/trainer_state.json"]},
}

#: (page, command prefix) -> the validation metrics the page says the curves show; curves.png
#: must also draw the learning rate and gradient norm (curve_panels of the run's history)
CURVES = {
    ("README.md", "python -m pip install -c constraints.txt -e . && rnnkit demo"):
        ("runs/demo-shakespeare", ["val_loss", "val_bpc"]),
    ("docs/getting-started.md", "rnnkit demo --out runs/docs_demo"):
        ("runs/docs_demo", ["val_loss", "val_bpc"]),
    ("docs/pipelines/text-generation.md", "rnnkit train configs/shakespeare_char.yaml"):
        ("{run}", ["val_loss", "val_bpc"]),
}


def _match(table: dict, cmd: WalkCommand):
    """The entry of the longest prefix of ``cmd`` on its page, or None."""
    hits = [(len(p), v) for (page, p), v in table.items()
            if page == cmd.page and cmd.command.startswith(p)]
    return max(hits, key=lambda x: x[0])[1] if hits else None


def _in(table: set, cmd: WalkCommand) -> bool:
    return any(page == cmd.page and cmd.command.startswith(p) for page, p in table)


def extra_args(cmd: WalkCommand, data_dir: Path):
    """The arguments the walk appends to each rnnkit command of ``cmd``'s line."""

    def extra(argv: list[str]) -> list[str]:
        add: list[str] = []
        if _in(DATA_DIR_ADDED, cmd) and "--data-dir" not in argv:
            add += ["--data-dir", str(data_dir)]
        by_command = _match(EXTRA_BY_COMMAND, cmd)
        if by_command is not None:
            return add + by_command
        if argv[:1] == ["demo"]:
            return add + ["--steps", "20" if "adding" in argv else "25"]
        if argv[:1] == ["train"] or argv[:2] in (["forecast", "train"], ["forecast", "backtest"]):
            recipe = next((a for a in argv if a.endswith(".yaml")), None)
            return add + ["--set", f"trainer.max_steps={STEPS.get(recipe, 8)}"]
        if argv[:2] == ["anomaly", "train"] or (argv[:2] == ["anomaly", "nab"] and "--detector" not in argv):
            return add + ["--set", "model.max_epochs=2"]
        return add

    return extra


# --------------------------------------------------------------------------- the walk


def _curves_problems(run_dir: Path, metrics: list[str]) -> list[str]:
    from rnnkit.train.monitor import curve_panels

    state = run_dir / "last" / "trainer_state.json"
    if not state.is_file():
        return [f"{state} is missing (the history curves.png is drawn from)"]
    history = json.loads(state.read_text())["state"]["history"]
    panels = curve_panels(history)
    titles = [p["title"] for p in panels]
    problems = []
    lr = [p for p in panels if p["title"] == "learning rate and gradient norm"]
    if not lr or not lr[0]["series"].get("lr", ([],))[0] or not lr[0].get("twin", {}).get("grad_norm", ([],))[0]:
        problems.append(f"curves.png of {run_dir} has no learning rate and gradient norm panel "
                        f"with data (panels: {titles})")
    for m in metrics:
        if m == "val_loss":
            ok = bool(panels and panels[0]["series"].get("validation", ([],))[0])
        else:
            ok = any(p["title"] == m and p["series"].get(m, ([],))[0] for p in panels)
        if not ok:
            problems.append(f"curves.png of {run_dir} does not draw {m} (panels: {titles})")
    return problems


def _check_files(paths: list[str], run: str | None, work: Path) -> list[str]:
    missing = []
    for p in paths:
        if "{run}" in p:
            if run is None:
                missing.append(f"{p} (the command made no run directory)")
                continue
            p = p.replace("{run}", run)
        if not (list(work.glob(p)) if any(c in p for c in "*?[") else (work / p).exists()):
            missing.append(p)
    return missing


def _run_dir(argv_list: list[list[str]], new_runs: list[str]) -> str | None:
    for argv in argv_list:
        for k, w in enumerate(argv):
            if w == "--out" and k + 1 < len(argv) and argv[:1] in (["train"], ["demo"], ["forecast"]):
                return argv[k + 1].rstrip("/")
    return new_runs[0] if len(new_runs) == 1 else (new_runs[-1] if new_runs else None)


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """Run the whole walk once: {page: [failures]}, plus the log of what ran."""
    base = tmp_path_factory.mktemp("walk")
    work, data = base / "work", make_datasets(base / "data")
    prepare_workdir(work)
    make_user_files(work)
    env = walk_env(base)
    failures: dict[str, list[str]] = {rel(p): [] for p in PAGES}
    log: list[str] = []
    done: dict[str, tuple] = {}   # line run -> (where, result, run dir)
    t0 = time.perf_counter()
    cpu0 = _children_cpu()
    for page in PAGES:
        tables = run_dir_tables(page)
        for cmd in walk_commands(page):
            reason = _match(NOT_RUNNABLE, cmd)
            if reason is not None:
                log.append(f"{cmd.where}: not run ({reason}): {cmd.text}")
                continue
            line, argvs = rewrite(cmd, data, extra_args(cmd, data))
            if not argvs:
                failures[cmd.page].append(f"{cmd.where}: `{cmd.text}` runs rnnkit in a way the walk "
                                          "cannot run; list it in NOT_RUNNABLE with the reason")
                continue
            if line in done:
                first, res, run = done[line]
                log.append(f"{cmd.where}: same as {first} ({res.seconds:.0f} s): {line}")
            else:
                res = run_line(line, work, env)
                run = _run_dir(argvs, res.new_runs)
                done[line] = (cmd.where, res, run)
                log.append(f"{cmd.where}: rc {res.returncode} in {res.seconds:.1f} s: {line}")
            head = f"{cmd.where}: `{cmd.text}` (run as `{line}`)"
            if res.returncode != 0:
                failures[cmd.page].append(f"{head} failed with exit status {res.returncode}:\n"
                                          + "\n".join(res.output.splitlines()[-25:]))
                continue
            promised = [p for argv in argvs for p in promised_paths(cmd, argv)]
            promise = _match(PROMISES, cmd) or {}
            promised += promise.get("files", [])
            for table_dir, paths in tables.items():
                if run is not None and run.rstrip("/") == table_dir.rstrip("/"):
                    promised += [f"{table_dir}/{p}" for p in paths]
            missing = _check_files(promised, run, work)
            if missing:
                failures[cmd.page].append(f"{head}: promised files missing: {', '.join(missing)}")
            out_lines = res.output.splitlines()
            for pattern in promise.get("lines", []):
                if not any(re.search(pattern, s) for s in out_lines):
                    failures[cmd.page].append(f"{head}: printed no line matching {pattern!r}; "
                                              "its output ends:\n" + "\n".join(out_lines[-15:]))
            curves = _match(CURVES, cmd)
            if curves is not None:
                where, metrics = curves
                run_path = work / (where.replace("{run}", run) if run else where)
                failures[cmd.page] += [f"{head}: {p}" for p in _curves_problems(run_path, metrics)]
            recorded = recorded_output(page, cmd.block)
            if recorded is not None and argvs[-1][:1] == ["predict"] and "..." not in recorded:
                # one printed line per command, with the recorded line's tab-separated fields
                k = [c.line for c in walk_commands(page) if c.block.line == cmd.block.line].index(cmd.line)
                want, got = output_shape(recorded), [s for s in out_lines if s.strip()][-1:]
                if k < len(want) and output_shape("\n".join(got)) != [want[k]]:
                    failures[cmd.page].append(
                        f"{head}: printed {got!r}, not a line of {want[k]} tab-separated fields "
                        f"as the recorded output shows:\n{recorded.strip()}")
    elapsed = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    log.append(f"the walk took {elapsed:.0f} s wall, its commands {cpu:.0f} s of CPU")
    (base / "walk.log").write_text("\n".join(log) + "\n")
    print("\n".join(log))
    return failures, log, cpu


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------- the mechanics


def test_split_shell_quotes_operators_and_comments():
    segs, seps, comment = split_shell('echo "a | b # c" | rnnkit predict x --file -   # stdin')
    assert segs == ['echo "a | b # c"', "rnnkit predict x --file -"] and seps == ["|"]
    assert comment == "stdin"
    segs, seps, _ = split_shell("python -m pip install -e . && rnnkit demo")
    assert segs == ["python -m pip install -e .", "rnnkit demo"] and seps == ["&&"]


def test_rewrite_changes_only_data_dir_and_appends_the_plan(tmp_path):
    from docs_blocks import Block

    b = Block("p.md", 1, "bash", "", "")
    cmd = WalkCommand("p.md", 2, "python -m pip install -c constraints.txt -e . && rnnkit train "
                      "configs/ptb_small.yaml --data-dir ../shared/datasets   # PTB", b, "PTB")
    line, argvs = rewrite(cmd, tmp_path, lambda argv: ["--set", "trainer.max_steps=5"])
    assert line == (f"rnnkit train configs/ptb_small.yaml --data-dir {tmp_path} "
                    "--set trainer.max_steps=5")
    assert argvs == [["train", "configs/ptb_small.yaml", "--data-dir", str(tmp_path), "--set",
                      "trainer.max_steps=5"]]
    cmd = WalkCommand("p.md", 3, 'echo "Ein Hund." | rnnkit predict r/best --file -', b)
    line, _ = rewrite(cmd, tmp_path, lambda argv: [])
    assert line == 'echo "Ein Hund." | rnnkit predict r/best --file -'


def test_a_failing_command_or_a_missing_file_is_caught(tmp_path):
    prepare_workdir(tmp_path)
    res = run_line("rnnkit train configs/no_such_recipe.yaml", tmp_path, walk_env(tmp_path))
    assert res.returncode != 0 and "no_such_recipe" in res.output
    (tmp_path / "runs" / "x").mkdir(parents=True)
    assert _check_files(["{run}/curves.png", "runs/x"], "runs/x", tmp_path) == ["runs/x/curves.png"]
    assert _check_files(["{run}/best"], None, tmp_path) == ["{run}/best (the command made no run directory)"]
    assert _curves_problems(tmp_path / "runs" / "x", ["val_loss"])  # no trainer_state.json


def test_every_rnnkit_line_is_walked_or_listed_with_a_reason():
    """Nothing is skipped silently, and the table names only lines that exist."""
    lines = {(c.page, c.command) for p in PAGES for c in walk_commands(p)}
    for (page, prefix), reason in NOT_RUNNABLE.items():
        assert reason.strip(), (page, prefix)
        assert any(pg == page and c.startswith(prefix) for pg, c in lines), \
            f"NOT_RUNNABLE names {page}: {prefix!r}, which is no longer on the page"
    for table in (EXTRA_BY_COMMAND, PROMISES, CURVES, dict.fromkeys(DATA_DIR_ADDED)):
        for page, prefix in table:
            assert any(pg == page and c.startswith(prefix) for pg, c in lines), \
                f"the plan names {page}: {prefix!r}, which is no longer on the page"
    assert len(lines) >= 40, len(lines)


def test_recipes_shown_on_the_pages_load(tmp_path):
    """A YAML block with a ``task:`` (a recipe a reader would copy into a file) loads as written."""
    from docs_blocks import parse_blocks

    from rnnkit.train.config import load_recipe

    shown = 0
    for page in PAGES:
        for b in parse_blocks(page.read_text(encoding="utf-8"), rel(page)):
            if b.lang not in ("yaml", "yml") or not re.search(r"^task:", b.code, re.M) \
                    or "{...}" in b.code:
                continue
            path = tmp_path / f"recipe_{b.line}.yaml"
            path.write_text(b.code)
            cfg = load_recipe(path)
            assert cfg.task, f"{b.where}: the recipe loaded without a task"
            shown += 1
    assert shown >= 1  # own-data.md's classification recipe


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_generated_data_is_read_by_the_real_readers(tmp_path):
    from rnnkit.data import load_corpus
    from rnnkit.data.conll import read_conllu
    from rnnkit.data.nab import load_nab_corpus
    from rnnkit.data.parallel import resolve_parallel

    root = make_datasets(tmp_path / "d")
    assert load_corpus("ptb", data_dir=root).splits["train"].numel() > 5000
    assert len(read_conllu(root / "ud_english_ewt" / "en_ewt-ud-train.conllu")) == 300
    assert set(resolve_parallel("multi30k", "de", "en", data_dir=root)) >= {"train", "valid", "test"}
    assert len(load_nab_corpus(root / "nab", families=["realKnownCause"])) == 1


# --------------------------------------------------------------------------- the pages


@pytest.mark.parametrize("page", PAGES, ids=[rel(p) for p in PAGES])
def test_page_commands_run_and_keep_their_promises(walk, page):
    failures, _, _ = walk
    problems = failures[rel(page)]
    assert not problems, "\n\n".join(problems)


def test_the_walk_fits_its_budget(walk):
    # CPU time of the commands, not wall time: other jobs on the machine slow the clock, not
    # this; what it guards is the suite's budget growing with the pages' commands
    _, _, cpu = walk
    assert cpu < 900, f"the docs walk's commands took {cpu:.0f} s of CPU, over its 15-minute budget"
