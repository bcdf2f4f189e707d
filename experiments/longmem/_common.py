"""Shared harness of the long-term dependency experiments (adding, copy memory, sequential MNIST).

Each task script defines a model, a batch sampler and an evaluation; this module
owns what they share: the command line, the device, the training (Adam or RMSProp,
gradient clipping, periodic evaluation, early stop when solved: a :class:`Run` is
trained by ``rnnkit.train.Trainer`` as one epoch of ``--steps`` batches), the log
file and the result JSON in the project's results convention::

    {task, dataset, split, metric, value, reference: {value, source}, command,
     wall_seconds, device, date, ...extra keys}

Scripts run unchanged on CPU or GPU (``--device auto`` picks CUDA when present).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from rnnkit.train import OptimConfig, RunConfig, StepOutput, Trainer, TrainerConfig, TrainingError

__all__ = ["REPO", "CELLS", "base_parser", "pick_device", "device_string", "parse_layer_kw",
           "make_layer", "resolve_lr", "Run", "RunTask", "train", "write_result", "command_line"]

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "experiments" / "results"
LOGS = REPO / "experiments" / "logs"

#: cell name -> (layer name in rnnkit.layers.LAYERS, fixed layer keyword arguments)
CELLS: dict[str, tuple[str, dict]] = {
    "rnn_tanh": ("rnn_tanh", {}),
    "irnn": ("rnn_relu", {"init_hh": "identity"}),  # Le et al. 2015
    "lstm": ("lstm", {}),
    "gru": ("gru", {}),
    "indrnn": ("indrnn", {}),
    "mingru": ("mingru", {}),
}

#: learning rates that differ from the task's default: the IRNN's identity recurrence
#: with relu diverges under Adam at 1e-3 (loss NaN within 20 steps at T=500)
CELL_LR = {"irnn": 1e-4}


def base_parser(description: str, **defaults) -> argparse.ArgumentParser:
    """Arguments common to every task; ``defaults`` overrides the per-task defaults."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--cell", required=True, choices=sorted(CELLS))
    ap.add_argument("--hidden", type=int, default=defaults.get("hidden", 128))
    ap.add_argument("--layers", type=int, default=defaults.get("layers", 1))
    ap.add_argument("--steps", type=int, default=defaults.get("steps", 2000),
                    help="training steps (batches) at most")
    ap.add_argument("--batch", type=int, default=defaults.get("batch", 50))
    ap.add_argument("--lr", type=float, default=None,
                    help=f"learning rate (default {defaults.get('lr', 1e-3)}; "
                         f"per cell: {CELL_LR})")
    ap.add_argument("--optimizer", choices=("adam", "rmsprop"),
                    default=defaults.get("optimizer", "adam"))
    ap.add_argument("--clip", type=float, default=defaults.get("clip", 1.0),
                    help="max global gradient norm (0: no clipping)")
    ap.add_argument("--eval-every", type=int, default=defaults.get("eval_every", 100))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-going", action="store_true",
                    help="train all --steps even after the task is solved")
    ap.add_argument("--layer-kw", action="append", default=[], metavar="KEY=JSON",
                    help="extra layer keyword, e.g. --layer-kw forget_bias=1.0 (repeatable)")
    ap.add_argument("--paper-init", action="store_true",
                    help="IndRNN only: the authors' initialisation for long memory: the last "
                         "layer's recurrent weights ~ U(2**(-1/T), 2**(1/T)), biases 0 "
                         "(Li et al. 2018; their code's u_lastlayer_ini)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: leave torch's default / OMP_NUM_THREADS)")
    ap.add_argument("--name", default=None, help="result name (default: derived from the run)")
    ap.add_argument("--out-dir", default=str(RESULTS), help="where the result JSON goes")
    ap.add_argument("--no-record", action="store_true",
                    help="smoke run: log to stdout only, write no result JSON")
    ap.set_defaults(default_lr=defaults.get("lr", 1e-3))
    return ap


def resolve_lr(args) -> float:
    """``--lr``, else the cell's own default (``CELL_LR``), else the task's."""
    if args.lr is None:
        args.lr = CELL_LR.get(args.cell, args.default_lr)
    return args.lr


def parse_layer_kw(items: list[str]) -> dict:
    """``["forget_bias=1.0", "init_hh=\\"identity\\""]`` -> dict (values are JSON, else strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"--layer-kw: expected KEY=VALUE with a Python identifier as KEY, "
                             f"got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def make_layer(args, input_size: int, T: int) -> nn.Module:
    """The recurrent layer of ``--cell`` with ``--hidden``, ``--layers`` and ``--layer-kw``.

    IndRNN gets the paper's bound on its recurrent weights for the sequence length,
    ``time_horizon=T`` (Li et al. 2018), unless ``--layer-kw`` sets a bound. The
    keyword arguments used are stored in ``args.layer_kwargs`` for the record.
    """
    from rnnkit.layers import LAYERS, build_layer

    layer, fixed = CELLS[args.cell]
    if layer not in LAYERS:
        raise SystemExit(f"--cell: {args.cell!r} needs the layer {layer!r}, which this rnnkit "
                         f"does not register (known: {sorted(LAYERS)})")
    kw = {**fixed, **parse_layer_kw(args.layer_kw)}
    if args.cell == "indrnn" and "recurrent_max" not in kw:
        kw.setdefault("time_horizon", T)
    args.layer_kwargs = kw
    built = build_layer(layer, input_size, args.hidden, num_layers=args.layers, **kw)
    if getattr(args, "paper_init", False):
        if args.cell != "indrnn":
            raise SystemExit(f"--paper-init: only for --cell indrnn, got {args.cell!r}")
        with torch.no_grad():
            last = args.layers - 1
            for name, p in built.named_parameters():
                if name.startswith("bias"):
                    p.zero_()
                elif name.startswith("weight_hh") and name.endswith(f"_l{last}"):
                    p.uniform_(2.0 ** (-1.0 / T), 2.0 ** (1.0 / T))
        args.layer_kwargs = {**kw, "paper_init": True}
    return built


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device: {name!r} asked for but CUDA is not available")
    return dev


def device_string(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (torch {torch.__version__})"
    return (f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
            f"thread(s) of {os.cpu_count()} cores (torch {torch.__version__})")


@dataclass
class Run:
    """What a task gives the training loop.

    ``sample(step) -> (x, y)`` draws a training batch; ``loss(model, x, y)`` is the
    training loss; ``evaluate(model) -> dict`` returns at least ``metric`` (the
    recorded number) and ``solved`` (bool).
    """

    model: nn.Module
    sample: Callable
    loss: Callable
    evaluate: Callable
    metric: str
    history: list = field(default_factory=list)


def _log(fh, line: str) -> None:
    print(line, flush=True)
    if fh is not None:
        fh.write(line + "\n")
        fh.flush()


class RunTask:
    """A :class:`Run` as an ``rnnkit.train.Task``: one epoch of ``args.steps`` batches.

    ``evaluate`` runs ``run.evaluate``, logs it with the mean training loss since the last
    evaluation, and ends training (``Trainer.request_stop``) at the first solved evaluation
    unless ``--keep-going``, or at a non-finite metric.
    """

    name = "longmem"
    item_name = "sequences"
    eval_splits = ("valid",)

    def __init__(self, run: Run, args, log: Callable[[str], None]):
        self.run, self.args, self.log = run, args, log
        self.trainer: Trainer | None = None  # set once the Trainer is built
        self.model = run.model
        self.step, self.losses, self.last = 0, [], {}
        self.solved_at, self.evaluated_at = None, None
        self.t0 = time.perf_counter()

    def setup(self, rank: int, world_size: int) -> None:
        if world_size != 1:
            raise SystemExit("the long-memory experiments train in one process")

    def steps_per_epoch(self, epoch: int) -> int:
        return self.args.steps

    def train_batches(self, epoch: int, start_step: int):
        for step in range(start_step + 1, self.args.steps + 1):
            yield self.run.sample(step)

    def initial_carry(self):
        return None

    def training_step(self, model: nn.Module, batch, carry) -> StepOutput:
        x, y = batch  # time-major: x (T, B, ...)
        loss = self.run.loss(model, x, y)
        self.step += 1
        self.losses.append(loss.item())
        return StepOutput(loss, None, x.shape[1], self.losses[-1])

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if self.evaluated_at != self.step:  # train() evaluates again after a diverged loss
            self.evaluated_at = self.step
            self.last = self.run.evaluate(model)
            train_loss = sum(self.losses) / max(len(self.losses), 1)
            self.losses = []
            self.run.history.append([self.step, round(self.last["metric"], 6)])
            self.log(f"step {self.step:6d}  train_loss {train_loss:.5f}  {self.run.metric} "
                     f"{self.last['metric']:.5f}  {time.perf_counter() - self.t0:8.1f}s")
            if not math.isfinite(self.last["metric"]):
                self.log("# diverged (non-finite test metric); stopping")
                self.trainer.request_stop("diverged")
            elif self.last["solved"] and self.solved_at is None:
                self.solved_at = self.step
                if not self.args.keep_going:
                    self.trainer.request_stop("solved")
        return {"metric": self.last["metric"]}

    def write_assets(self, directory: Path) -> None:
        pass


def _fabric(device: torch.device):
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator=device.type, precision="32-true",
                    devices=1 if device.index is None else [device.index])
    fabric.launch()
    return fabric


def train(run: Run, args, log_name: str) -> dict:
    """Train ``run`` under ``rnnkit.train.Trainer`` (clipping, periodic evaluation, stop at the
    first solved evaluation) in a temporary run directory; no logs but ours."""
    fh = None
    if not args.no_record:
        LOGS.mkdir(parents=True, exist_ok=True)
        fh = open(LOGS / f"longmem_{log_name}.log", "w")
    _log(fh, f"# {' '.join(shlex.quote(a) for a in sys.argv)}")
    _log(fh, f"# {sum(p.numel() for p in run.model.parameters())} parameters; {run.model}")
    tc = TrainerConfig(max_epochs=1, val_every_steps=args.eval_every,
                       grad_clip=args.clip if args.clip > 0 else None, monitor="val_metric",
                       mode="max" if run.metric.endswith("accuracy") else "min",
                       checkpoint_every_steps=None, loggers=[], plot=False, progress=False,
                       log_every_steps=10**9, checkpoints="memory")
    cfg = RunConfig(task="longmem", data=None, model=None, trainer=tc,
                    optim=OptimConfig(name=args.optimizer, lr=resolve_lr(args)))
    task = RunTask(run, args, lambda line: _log(fh, line))
    try:
        with tempfile.TemporaryDirectory(prefix="rnnkit-longmem-") as tmp:
            trainer = task.trainer = Trainer(cfg, task, _fabric(pick_device(args.device)),
                                             Path(tmp), console=Console(quiet=True))
            task.t0 = time.perf_counter()
            try:
                trainer.fit()
            except TrainingError as e:  # a non-finite training loss: record the model's metric
                _log(fh, f"# {e}")
                trainer.evaluate()
    finally:
        wall = time.perf_counter() - task.t0
        if fh is not None:
            fh.write(f"# stopped at step {task.step}, {wall:.1f}s\n")
            fh.close()
    return {**task.last, "steps_run": task.step, "solved_at_step": task.solved_at,
            "wall_seconds": round(wall, 1)}


def _dumps(record: dict) -> str:
    """Indented JSON, with the (long) ``history`` list of [step, metric] pairs on one line."""
    hist = record.get("history")
    text = json.dumps({k: v for k, v in record.items() if k != "history"}, indent=2)
    if hist is None:
        return text
    return text[:-2] + ',\n  "history": ' + json.dumps(hist, separators=(",", ":")) + "\n}"


def write_result(name: str, out_dir: str, record: dict) -> Path:
    """Write ``record`` (plus ``date``) as ``<out_dir>/<name>.json``."""
    record = {**record, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(_dumps(record) + "\n")
    tmp.replace(path)
    return path


def command_line() -> str:
    """The exact command that ran, with OMP_NUM_THREADS when it was set."""
    env = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " \
        if "OMP_NUM_THREADS" in os.environ else ""
    script = os.path.relpath(sys.argv[0], REPO)
    return env + "python " + " ".join(shlex.quote(a) for a in [script, *sys.argv[1:]])
