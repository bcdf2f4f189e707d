"""Speech recognition with CTC: audio -> log-mel frames -> conv + recurrent stack -> characters.

The data (:mod:`rnnkit.tasks.asr_data`: FSDD connected digits, a CSV ``path,text`` or a
LibriSpeech-style folder) is featurised once, normalised with the training split's
statistics and batched with lengths. Per batch::

    x, lengths       = collate(frames)                     (B, T, F), (B,)
    x                = SpecAugment(x)                      training only
    log p, T'        = model(x, lengths)                   (B, T', V), V characters + blank
    loss             = sum_b CTC(log p_b[:T'_b], y_b) / B  nats per utterance

Validation and test report ``loss``, ``wer``, ``cer`` and ``sentence_accuracy`` from greedy
decoding (:mod:`rnnkit.tasks.asr_eval`); :func:`evaluate_asr_checkpoint` also takes
``beam_size`` (flashlight-text's beam search, constrained to the recipe's lexicon, which for
the digits is the ten digit words). A checkpoint stores ``units.json`` (characters, lexicon,
feature settings and statistics), so :func:`transcribe_files` needs nothing else.

Example::

    cfg = load_recipe("configs/digits_ctc.yaml")
    run_training(cfg, recipe_name="digits_ctc")
    transcribe_files("runs/digits_ctc/best", ["utt.wav"])    # [{"text": "three one four"...}]
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.data.audio import FeatureConfig, compute_features, load_audio, normalise_features
from rnnkit.data.audio import spec_augment as _spec_augment
from rnnkit.data.speech import CharUnits
from rnnkit.models.asr import ASRConfig, CTCModel
from rnnkit.tasks.asr_data import (
    ASRDataConfig,
    TrainResynthesizer,
    check_asr_data_config,
    load_asr_data,
)
from rnnkit.tasks.asr_eval import (
    check_ctc_feasible,
    collate_utterances,
    decode_split,
    make_decoder,
)
from rnnkit.train.checkpoint import (
    CheckpointError,
    load_model_weights,
    read_run_config,
)
from rnnkit.train.config import (
    ConfigError,
    RunConfig,
    from_dict,
)
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput, TaskSpec, register_task

__all__ = ["ASRTask", "load_asr_checkpoint", "evaluate_asr_checkpoint", "transcribe_files",
           "transcribe_waveform", "SPEC"]


class ASRTask:
    """The CTC speech-recognition task for :class:`~rnnkit.train.Trainer`.

    Args:
        config: the run config (``data``: :class:`ASRDataConfig`, ``model``: ASRConfig).
        data_dir: overrides ``data.data_dir`` (the CLI's ``--data-dir``).
        units: a checkpoint's units (None: from the training transcripts).
    """

    name = "asr"
    item_name = "utterances"
    loss_name = "CTC loss (nats per utterance)"

    def __init__(self, config: RunConfig, *, data_dir: str | None = None,
                 units: CharUnits | None = None):
        d: ASRDataConfig = config.data
        check_asr_data_config(d)  # the audio pipeline's checks (batch sizes, SpecAugment) too
        if d.normalize not in ("global", "utterance"):
            raise ConfigError(f"config key 'data.normalize': expected 'global' or 'utterance', "
                              f"got {d.normalize!r}")
        self.config, self.seed = config, config.trainer.seed
        self.data, self.units, self.stats, self.lexicon = load_asr_data(
            d, self.seed, data_dir, units)
        self.model = build_model(CTCModel, config.model, d.features.num_features,
                                 len(self.units), run=config)
        for items in self.data.values():  # CTC cannot align a transcript longer than its audio
            check_ctc_feasible(items, self.model.frame_lengths)
        self.eval_splits = tuple(s for s in ("valid", "test") if s in self.data)
        self._decode = make_decoder(self.units)
        self.rank, self.world = 0, 1
        self._resynth = (TrainResynthesizer(d, data_dir, self.units, self.stats)
                         if d.resynthesize else None)
        self._epoch: tuple[int, list] = (0, self.data["train"])  # the utterances of an epoch

    def describe(self) -> dict[str, str]:
        d: ASRDataConfig = self.config.data
        sizes = ", ".join(f"{s} {len(v)}" for s, v in self.data.items())
        return {"utterances": f"{sizes} ({d.source}"
                              + (f", {d.split})" if d.source == "fsdd_digits" else ")"),
                "units": f"{len(self.units)} ({''.join(self.units.chars)!r} + blank)"}

    def setup(self, rank: int, world_size: int) -> None:
        self.rank, self.world = rank, world_size

    def steps_per_epoch(self, epoch: int) -> int:
        n, B = len(self.data["train"]), self.config.data.batch_size
        return max(1, n // B) if self.world > 1 else -(-n // B)

    def train_utterances(self, epoch: int) -> list[tuple]:
        """The training utterances of ``epoch``: the same every epoch, or with
        ``data.resynthesize`` new ones after the first (made once per epoch)."""
        if self._resynth is None or epoch == 0:
            return self.data["train"]
        if self._epoch[0] != epoch:
            self._epoch = (epoch, self._resynth(epoch))
            check_ctc_feasible(self._epoch[1], self.model.frame_lengths)
        return self._epoch[1]

    def train_batches(self, epoch: int, start_step: int) -> Iterator[tuple]:
        """Seeded shuffle per epoch; rank r takes every W-th utterance of the global batch."""
        B, train = self.config.data.batch_size, self.train_utterances(epoch)
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(train), generator=g).tolist()
        for k in range(start_step, self.steps_per_epoch(epoch)):
            chunk = order[k * B:(k + 1) * B][self.rank::self.world]
            yield collate_utterances([train[i] for i in chunk])

    def initial_carry(self) -> Any:
        return None

    def training_step(self, model: nn.Module, batch, carry: Any) -> StepOutput:
        d: ASRDataConfig = self.config.data
        dev = next(model.parameters()).device
        x, lengths, y, ylen = batch
        if d.spec_augment:
            x, _ = _spec_augment(x, lengths, freq_masks=d.freq_masks, freq_width=d.freq_width,
                                 time_masks=d.time_masks, time_width=d.time_width,
                                 max_time_fraction=d.max_time_fraction)
        lp, olen = model(x.to(dev), lengths)  # (B, T', V)
        ctc = nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
        loss = ctc(lp.transpose(0, 1), y.to(dev), olen, ylen) / len(ylen)  # (T', B, V) in
        return StepOutput(loss, None, int(len(ylen)))

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.data:
            raise ValueError(f"split {split!r} is empty or unknown; available: "
                             f"{', '.join(self.data)}")
        m = decode_split(model, self.data[split], self._decode, self.config.data.eval_batch_size)
        return {k: m[k] for k in ("loss", "wer", "cer", "sentence_accuracy")}

    def data_splits(self) -> dict[str, Any]:
        """Each split's utterances (the first epoch's, with ``data.resynthesize``), hashed
        for ``--resume``."""
        return dict(self.data)

    def write_assets(self, directory: Path) -> None:
        info = {"units": json.loads(self.units.to_json()), "lexicon": self.lexicon,
                "features": asdict(self.config.data.features), **self.stats}
        (directory / "units.json").write_text(json.dumps(info) + "\n")


def build_asr_task(config: RunConfig, data_dir: str | None = None) -> ASRTask:
    return ASRTask(config, data_dir=data_dir)


# --------------------------------------------------------------------------- checkpoints


def load_asr_checkpoint(directory: str | Path, *, map_location: str = "cpu"):
    """``(model (eval mode), units, info (lexicon, features, statistics), run config)``."""
    d = Path(directory)
    _, cfg = read_run_config(d, task="asr")
    try:
        info = json.loads((d / "units.json").read_text(encoding="utf-8"))
        units = CharUnits.from_json(json.dumps(info["units"]))
        info["features"] = from_dict(FeatureConfig, info["features"], "features")
    except FileNotFoundError:
        raise CheckpointError(f"{d}: not a complete asr checkpoint (units.json is "
                              "missing)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{d / 'units.json'}: corrupted ({e})") from None
    model = build_model(CTCModel, cfg.model, info["features"].num_features, len(units),
                        run=cfg, training=False, source=d / "config.json")
    load_model_weights(model, d)
    model.to(map_location).eval()
    return model, units, info, cfg


def evaluate_asr_checkpoint(directory: str | Path, *, split: str | None = None,
                            data_dir: str | None = None, batch_size: int | None = None,
                            beam_size: int | None = None) -> dict[str, Any]:
    """WER, CER, sentence accuracy and CTC loss of a checkpoint on ``split`` of its data,
    decoded greedily (``beam_size`` 1 or None) or by beam search with the lexicon."""
    for flag, v in (("--batch-size", batch_size), ("--beam-size", beam_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{flag}: expected a positive integer, got {v!r}")
    model, units, info, cfg = load_asr_checkpoint(directory)
    task_data = load_asr_data(cfg.data, cfg.trainer.seed, data_dir, units)[0]
    split = split or "test"
    if split not in task_data:
        raise ValueError(f"--split {split}: not in the data; available: {', '.join(task_data)}")
    check_ctc_feasible(task_data[split], model.frame_lengths)
    beam = 1 if beam_size is None else beam_size
    decode = make_decoder(units, beam, info.get("lexicon") if beam > 1 else None)
    m = decode_split(model, task_data[split], decode,
                     cfg.data.eval_batch_size if batch_size is None else batch_size)
    items = task_data[split]
    wrong = [{"ref": it[2], "hyp": h} for it, h in zip(items, m["hyps"]) if it[2] != h][:10]
    return {"split": split, "utterances": len(items), "decoder": (
        "greedy" if beam == 1 else f"beam {beam}" + (" + lexicon" if info.get("lexicon") else "")),
        **{k: m[k] for k in ("wer", "cer", "sentence_accuracy", "loss")}, "errors": wrong}


@torch.no_grad()
def transcribe_waveform(model: CTCModel, units: CharUnits, info: dict, y: np.ndarray,
                        beam_size: int = 1) -> str:
    """The transcript of float32 samples ``y`` at the checkpoint's rate."""
    x = torch.from_numpy(normalise_features(compute_features(y, info["features"]), info))[None]
    lp, olen = model(x, torch.tensor([x.shape[1]]))  # (1, T', V)
    lexicon = info.get("lexicon") if beam_size > 1 else None
    return make_decoder(units, beam_size, lexicon)(lp, olen)[0]


def transcribe_files(checkpoint: str | Path, inputs: list[str], *, beam_size: int = 1
                     ) -> list[dict[str, Any]]:
    """``rnnkit predict`` for asr checkpoints: the transcript of each audio file."""
    model, units, info, _ = load_asr_checkpoint(checkpoint)
    out = []
    for f in inputs:
        y, _ = load_audio(f, info["features"].sample_rate)
        text = transcribe_waveform(model, units, info, y, beam_size)
        out.append({"input": f, "transcript": text, "text": f"{Path(f).name}\t{text}"})
    return out


def _units(directory: Path) -> CharUnits:
    """A checkpoint's units (for a task rebuilt around its weights)."""
    try:
        return CharUnits.from_json(json.dumps(json.loads(
            (Path(directory) / "units.json").read_text(encoding="utf-8"))["units"]))
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{directory}: units.json unreadable ({e})") from None


def _predictor(directory: Path, int8: bool):
    from rnnkit.tasks.asr_stream import StreamingTranscriber
    from rnnkit.tasks.predictors import ASRPredictor, maybe_int8

    model, units, info, _ = load_asr_checkpoint(directory)
    model = maybe_int8(model, int8)
    streams = not model.config.bidirectional and info.get("normalize") == "global"
    return ASRPredictor(
        model, info["features"].sample_rate,
        lambda m, y, b: transcribe_waveform(m, units, info, y, b),
        (lambda: StreamingTranscriber(model, units, info)) if streams else None,
        facts={"units": units.chars, "lexicon": info.get("lexicon")})


SPEC = register_task(TaskSpec(
    name="asr",
    data_config=ASRDataConfig,
    model_config=ASRConfig,
    build=build_asr_task,
    description="speech recognition (log-mel, conv front-end, recurrent stack, CTC)",
    load=lambda d, cfg, data_dir=None: ASRTask(cfg, data_dir=data_dir, units=_units(d)),
    evaluate=evaluate_asr_checkpoint,
    predict=transcribe_files,
    predictor=_predictor,
))
