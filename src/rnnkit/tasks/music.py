"""Polyphonic music: piano rolls -> RNN (any cell) -> Bernoulli or RNN-NADE outputs.

The data is JSB Chorales (``source: jsb``, Boulanger-Lewandowski et al. 2012's quarter-note
split 229/76/77, found in ``data_dir`` as ``jsb_chorales/jsb-chorales-quarter.json``), a
JSON file of the same form, or a folder of MIDI files (split by file, seeded). Per batch of
``B`` pieces (training pieces optionally transposed at random, and cut to ``max_length``)::

    x, lengths  = collate(rolls)                     (B, T, 88), (B,)
    log p_t     = log P(x_t | x_<t)                  (B, T)  summed over the 88 keys
    loss        = -sum_{b, t<len_b} log p_t / sum_b len_b      NLL per time step (nats)

Evaluation reports the same quantity over a whole split, every time step of every piece
weighted equally (the definition of Boulanger-Lewandowski et al. 2012 and Chung et al.
2014): ``loss`` (nats per step), and ``frame_acc`` (Bay et al. 2009: ``sum TP / sum (TP +
FP + FN)`` over all steps, each step's prediction made from the true past: keys with
``p > 0.5``, or the NADE's greedy pass).

Checkpoints carry ``music.json`` (keys, lowest note, grid), read by generation
(:mod:`rnnkit.tasks.music_generate`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.data.music import (
    LOWEST_NOTE,
    NUM_KEYS,
    MusicDataError,
    collate,
    random_transpose,
    read_jsb,
)
from rnnkit.models.music import MusicConfig, PianoRollRNN, frame_counts
from rnnkit.tasks.music_generate import DEFAULT_LENGTH, plot_roll, sample_roll
from rnnkit.train.checkpoint import (
    CheckpointError,
    load_model_weights,
    read_run_config,
)
from rnnkit.train.config import ConfigError, RunConfig
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput, TaskSpec, register_task

__all__ = ["MusicDataConfig", "MusicTask", "read_music_data", "evaluate_rolls",
           "load_music_checkpoint", "evaluate_music_checkpoint", "predict_midi", "generate_piece",
           "JSB_FILE"]

#: where JSB Chorales lives under a data directory
JSB_FILE = "jsb_chorales/jsb-chorales-quarter.json"


@dataclass
class MusicDataConfig:
    """The ``data:`` section of a music recipe.

    Attributes:
        source: "jsb", a JSB-style JSON file, or a folder of MIDI files.
        data_dir: where ``jsb_chorales/`` lives (else ``--data-dir``, $RNNKIT_DATA, the cache).
        steps_per_quarter: the grid of MIDI files (JSB's is 1: quarter notes).
        valid_fraction / test_fraction: per-file split of a MIDI folder (seeded by
            ``split_seed``).
        split_seed: the seed of that split (fixed, so every training seed sees one split).
        transpose: training augmentation: each piece moved by a random shift of at most this
            many semitones that keeps it on the piano (0: off).
        max_length: cut training pieces into chunks of at most this many steps (None: whole).
        batch_size / eval_batch_size: pieces per batch.
    """

    source: str = "jsb"
    data_dir: str | None = None
    steps_per_quarter: int = 1
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    transpose: int = 0
    max_length: int | None = None
    batch_size: int = 16
    eval_batch_size: int = 64


def _find_jsb(data_dir: str | None) -> Path:
    roots = [r for r in (data_dir, os.environ.get("RNNKIT_DATA")) if r]
    roots.append(str(Path.home() / ".cache" / "rnnkit"))
    for r in roots:
        p = Path(r).expanduser() / JSB_FILE
        if p.is_file() or Path(str(p) + ".gz").is_file():
            return p
    raise MusicDataError(f"data.source 'jsb': {JSB_FILE} not found in {roots}; pass --data-dir "
                         "DIR or set RNNKIT_DATA to the folder holding jsb_chorales/")


def _split_files(rolls: dict[str, np.ndarray], d: MusicDataConfig) -> dict[str, list]:
    names = sorted(rolls)
    order = np.random.default_rng(d.split_seed).permutation(len(names))
    n_test = int(round(d.test_fraction * len(names)))
    n_valid = int(round(d.valid_fraction * len(names)))
    parts = {"test": order[:n_test], "valid": order[n_test:n_test + n_valid],
             "train": order[n_test + n_valid:]}
    if len(parts["train"]) == 0:
        raise ConfigError(f"data.source {d.source!r}: {len(names)} file(s) leave none for "
                          "training after valid_fraction/test_fraction")
    return {s: [rolls[names[i]] for i in idx] for s, idx in parts.items() if len(idx)}


def read_music_data(d: MusicDataConfig, data_dir: str | None = None
                    ) -> tuple[dict[str, list], int]:
    """``({split: [roll (T, 88) uint8, ...]}, notes dropped)`` of ``d.source`` (see
    :class:`MusicDataConfig`); ``dropped`` counts the notes off the piano (MIDI < 21 or > 108),
    which a piano roll cannot hold."""
    if d.source == "jsb":
        return read_jsb(_find_jsb(data_dir or d.data_dir))
    p = Path(d.source).expanduser()
    if p.is_file():
        return read_jsb(p)
    if p.is_dir():
        from rnnkit.data.midi import read_midi_folder

        rolls, dropped = read_midi_folder(p, steps_per_quarter=d.steps_per_quarter)
        return _split_files(rolls, d), dropped
    raise MusicDataError(f"data.source {d.source!r}: no such file or folder; expected 'jsb', a "
                         "JSB-style JSON file or a folder of MIDI files")


def _chunks(rolls: list[np.ndarray], n: int | None) -> list[np.ndarray]:
    if n is None:
        return list(rolls)
    return [r[i:i + n] for r in rolls for i in range(0, len(r), n)]


@torch.no_grad()
def evaluate_rolls(model: nn.Module, rolls: list[np.ndarray], batch_size: int = 64
                   ) -> dict[str, float]:
    """``{"loss": NLL per step (nats), "frame_acc", "steps"}`` over every step of ``rolls``."""
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size!r}: expected a positive integer")
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    nll, steps, tp, fp, fn = 0.0, 0, 0, 0, 0
    order = sorted(range(len(rolls)), key=lambda i: len(rolls[i]))  # little padding
    for k in range(0, len(order), batch_size):
        x, lengths = collate([rolls[i] for i in order[k:k + batch_size]])
        x = x.to(dev)
        nll -= float(model.log_prob(x, lengths).double().sum())
        steps += int(lengths.sum())
        a, b, c = frame_counts(model.predict_frames(x, lengths), x)
        tp, fp, fn = tp + a, fp + b, fn + c
    model.train(was)
    return {"loss": nll / steps, "frame_acc": tp / max(1, tp + fp + fn), "steps": float(steps)}


class MusicTask:
    """The music task for :class:`~rnnkit.train.Trainer`.

    Args:
        config: the run config (``data``: :class:`MusicDataConfig`, ``model``: MusicConfig).
        data_dir: overrides ``data.data_dir`` (the CLI's ``--data-dir``).
    """

    name = "music"
    item_name = "steps"
    loss_name = "NLL (nats per time step)"  # the y-label of curves.png

    def __init__(self, config: RunConfig, *, data_dir: str | None = None):
        d: MusicDataConfig = config.data
        for key in ("batch_size", "eval_batch_size", "steps_per_quarter"):
            if getattr(d, key) < 1:
                raise ConfigError(
                    f"config key 'data.{key}': expected a positive integer, got {getattr(d, key)}"
                )
        if d.transpose < 0 or (d.max_length is not None and d.max_length < 2):
            raise ConfigError(f"config key 'data.transpose'/'data.max_length': expected "
                              f"transpose >= 0 and max_length >= 2, got {d.transpose}, "
                              f"{d.max_length}")
        self.config, self.seed = config, config.trainer.seed
        self.data, self.notes_off_piano = read_music_data(d, data_dir)
        self.train = _chunks(self.data["train"], d.max_length)
        self.model = build_model(PianoRollRNN, config.model, NUM_KEYS, run=config)
        rate = np.concatenate(self.data["train"]).mean(axis=0)  # (K,) how often each key sounds
        self.model.init_output_bias(torch.from_numpy(rate.astype(np.float32)))
        self.eval_splits = tuple(s for s in ("valid", "test") if s in self.data)
        self.rank, self.world = 0, 1

    def describe(self) -> dict[str, str]:
        sizes = ", ".join(f"{s} {len(r)} ({sum(len(x) for x in r):,} steps)"
                          for s, r in self.data.items())
        m: MusicConfig = self.config.model
        return {"pieces": sizes, "output": f"{m.output}, {NUM_KEYS} keys",
                "notes off the piano": f"{self.notes_off_piano:,} dropped (MIDI < {LOWEST_NOTE} "
                                       f"or > {LOWEST_NOTE + NUM_KEYS - 1}: no key)"}

    def setup(self, rank: int, world_size: int) -> None:
        self.rank, self.world = rank, world_size

    def steps_per_epoch(self, epoch: int) -> int:
        n, B = len(self.train), self.config.data.batch_size
        return max(1, n // B) if self.world > 1 else -(-n // B)

    def train_batches(self, epoch: int, start_step: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Seeded shuffle (and transpositions) per epoch; rank r takes every W-th piece."""
        d: MusicDataConfig = self.config.data
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(self.train), generator=g).tolist()
        rng = np.random.default_rng([self.seed, epoch])
        shifted = [random_transpose(r, d.transpose, rng) if d.transpose else r
                   for r in (self.train[i] for i in order)]  # drawn for all: resumable
        for k in range(start_step, self.steps_per_epoch(epoch)):
            yield collate(shifted[k * d.batch_size:(k + 1) * d.batch_size][self.rank::self.world])

    def initial_carry(self) -> Any:
        return None

    def training_step(self, model: nn.Module, batch, carry: Any) -> StepOutput:
        dev = next(model.parameters()).device
        x, lengths = batch
        steps = int(lengths.sum())
        loss = -model.log_prob(x.to(dev), lengths).sum() / steps
        return StepOutput(loss, None, steps)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.data:
            raise ValueError(f"split {split!r} is not in the data; available: "
                             f"{', '.join(self.data)}")
        m = evaluate_rolls(model, self.data[split], self.config.data.eval_batch_size)
        return {"loss": m["loss"], "frame_acc": m["frame_acc"]}

    def data_splits(self) -> dict[str, Any]:
        """The training chunks and each evaluation split's piano rolls, hashed for ``--resume``."""
        return {"train": self.train, **{s: self.data[s] for s in self.eval_splits}}

    def write_assets(self, directory: Path) -> None:
        info = {"num_keys": NUM_KEYS, "lowest_note": LOWEST_NOTE,
                "steps_per_quarter": self.config.data.steps_per_quarter}
        (directory / "music.json").write_text(json.dumps(info) + "\n")


def build_music_task(config: RunConfig, data_dir: str | None = None) -> MusicTask:
    return MusicTask(config, data_dir=data_dir)


# --------------------------------------------------------------------------- checkpoints


def load_music_checkpoint(directory: str | Path, *, map_location: str = "cpu"
                          ) -> tuple[PianoRollRNN, dict, RunConfig]:
    """``(model (eval mode), music.json's dict, run config)`` of a music checkpoint."""
    d = Path(directory)
    _, cfg = read_run_config(d, task="music")
    try:
        info = json.loads((d / "music.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{d}: not a complete music checkpoint (music.json is "
                              "missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{d / 'music.json'}: corrupted ({e})") from None
    model = build_model(PianoRollRNN, cfg.model, int(info.get("num_keys", NUM_KEYS)), run=cfg,
                        training=False, source=d / "config.json")
    load_model_weights(model, d)
    model.to(map_location).eval()
    return model, info, cfg


def evaluate_music_checkpoint(directory: str | Path, *, split: str | None = None,
                              data: str | None = None, data_dir: str | None = None,
                              batch_size: int | None = None) -> dict[str, Any]:
    """NLL per step and frame accuracy of a checkpoint on ``split`` of its data (or ``data``:
    a JSB-style JSON file or a MIDI folder)."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"--batch-size: expected a positive integer, got {batch_size!r}")
    model, _, cfg = load_music_checkpoint(directory)
    d: MusicDataConfig = cfg.data
    if data is not None:
        d.source = data
    splits, dropped = read_music_data(d, data_dir)
    split = split or ("test" if "test" in splits else "valid" if "valid" in splits else "train")
    if split not in splits:
        raise ValueError(f"--split {split}: not in {d.source!r}; available: {', '.join(splits)}")
    m = evaluate_rolls(model, splits[split],
                       d.eval_batch_size if batch_size is None else batch_size)
    return {"split": split, "source": d.source, "pieces": len(splits[split]),
            "steps": int(m["steps"]), "nll_per_step": m["loss"], "frame_acc": m["frame_acc"],
            "notes_off_piano": dropped}


def predict_midi(checkpoint: str | Path, inputs: list[str]) -> list[dict[str, Any]]:
    """``rnnkit predict`` for music: how likely each MIDI file is under the model."""
    from rnnkit.data.midi import read_midi

    model, info, _ = load_music_checkpoint(checkpoint)
    out = []
    for f in inputs:
        roll, dropped = read_midi(f, steps_per_quarter=int(info.get("steps_per_quarter", 1)))
        m = evaluate_rolls(model, [roll])
        out.append({"input": f, "steps": len(roll), "nll_per_step": m["loss"],
                    "frame_acc": m["frame_acc"], "notes_off_piano": dropped,
                    "text": f"{Path(f).name}\tNLL {m['loss']:.3f} nats/step\tframe accuracy "
                            f"{m['frame_acc']:.3f}\t{len(roll)} steps"})
    return out


def generate_piece(checkpoint: str | Path, *, out: str | None = None, prompt: str | None = None,
                   length: int | None = None, temperature: float = 1.0,
                   seed: int | None = None, png: str | None = None,
                   tempo: float = 100.0) -> dict[str, Any]:
    """Sample a piece from a music checkpoint and write ``out`` (MIDI) and ``png``.

    Args:
        checkpoint: a music checkpoint directory.
        out: the MIDI file to write (default ``generated.mid``).
        prompt: a MIDI file to continue (it starts the written piece).
        length: new steps to sample (default :data:`DEFAULT_LENGTH`).
        temperature: divides every logit (1: the model's distribution).
        seed: seed of the sampler (same seed, same piece).
        png: the piano-roll picture (default: ``out`` with ``.png``).
        tempo: quarter notes per minute of the written MIDI.
    """
    from rnnkit.data.midi import read_midi, write_midi

    model, info, _ = load_music_checkpoint(checkpoint)
    spq = int(info.get("steps_per_quarter", 1))
    head, dropped = (read_midi(prompt, steps_per_quarter=spq) if prompt else (None, 0))
    new = sample_roll(model, DEFAULT_LENGTH if length is None else length, prompt=head,
                      temperature=temperature, seed=seed)
    piece = new if head is None else np.concatenate([head.astype(np.uint8), new])
    midi = write_midi(piece, out or "generated.mid", steps_per_quarter=spq, tempo=tempo)
    pic = plot_roll(piece, png or midi.with_suffix(".png"),
                    prompt_steps=0 if head is None else len(head),
                    title=f"{_label(checkpoint)}: {len(new)} sampled steps"
                          + (f" after a {len(head)}-step prompt" if head is not None else ""))
    polyphony = float(new.sum(1).mean())
    return {"midi": str(midi), "png": str(pic), "prompt_steps": 0 if head is None else len(head),
            "steps": len(new), "mean_notes_per_step": polyphony, "notes_off_piano": dropped,
            "text": f"wrote {midi} ({len(piece)} steps, {len(new)} sampled, "
                    f"{polyphony:.2f} notes per step) and {pic}"}


def _label(checkpoint: str | Path) -> str:
    """``run/best`` for a run's checkpoint, else the directory's name."""
    p = Path(checkpoint).resolve()
    return f"{p.parent.name}/{p.name}" if p.name in ("best", "last") else p.name


SPEC = register_task(TaskSpec(
    name="music",
    data_config=MusicDataConfig,
    model_config=MusicConfig,
    build=build_music_task,
    description="polyphonic music (piano rolls): RNN with Bernoulli or RNN-NADE outputs",
    evaluate=evaluate_music_checkpoint,
    predict=predict_midi,
    generate=generate_piece,
))
