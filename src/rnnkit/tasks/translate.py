"""Translation: parallel text -> one tokenizer per language -> seq2seq with attention -> BLEU.

The data (a known corpus such as ``multi30k`` or a folder of ``<split>.<lang>[.gz]`` files;
see :mod:`rnnkit.data.parallel`) is read line-aligned, a tokenizer per language
(:func:`rnnkit.data.tokenize.train_tokenizer`) is trained on the training split, and
batches of similar source length are formed. Per batch::

    src      = x_1 .. x_S <eos>                          (B, S) padded, lengths (B,)
    tgt_in   = <bos> y_1 .. y_T                          (B, T + 1)
    tgt_out  = y_1 .. y_T <eos>                          (B, T + 1)
    logits   = model(src, lengths, tgt_in)               (B, T + 1, V)
    loss     = mean over real target tokens of CE(logits, tgt_out) with label smoothing

Evaluation reports the (unsmoothed) token cross-entropy ``loss``, ``ppl``, and BLEU and
chrF from sacrebleu computed on *detokenised* output against the raw reference lines
(case-insensitively when ``data.lowercase`` is set, since the output is then lowercased too:
the metrics then carry ``"lowercase": True``):
greedy decoding on ``valid`` (cheap enough for every epoch), beam search
(``data.beam_size``, ``data.length_penalty``) on every other split, which also reports
``bleu_greedy``. A checkpoint stores ``src_tokenizer.json`` and ``tgt_tokenizer.json``, so
:func:`translate` needs nothing else.

Example::

    cfg = load_recipe("configs/multi30k_gru_attn.yaml")
    summary = run_training(cfg, recipe_name="multi30k")
    translate("runs/multi30k/best", ["Ein Hund rennt."])    # [{"translation": "A dog runs.", ...}]
    evaluate_translate_checkpoint("runs/multi30k/best", split="test", plot="attn.png")
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.parallel import read_parallel, resolve_parallel
from rnnkit.data.tokenize import TextTokenizer, length_buckets, train_tokenizer
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnkit.tasks.predictors import text_predictor
from rnnkit.tasks.translate_eval import (  # scoring and decoding, re-exported here
    _check_length_penalty,
    _pad,
    decode,
    plot_attention,
    score_translations,
)
from rnnkit.train.checkpoint import (
    CheckpointError,
    load_model_weights,
    read_run_config,
)
from rnnkit.train.config import ConfigError, RunConfig
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput, TaskSpec, register_task

__all__ = ["TranslateDataConfig", "TranslateTask", "score_translations", "decode",
           "load_translate_checkpoint", "translate", "predict_inputs",
           "evaluate_translate_checkpoint", "plot_attention"]


@dataclass
class TranslateDataConfig:
    """The ``data:`` section of a translation recipe.

    Attributes:
        source: a known parallel corpus ("multi30k") or a folder of ``<split>.<lang>`` files.
        src_lang / tgt_lang: language codes (file suffixes).
        splits: split -> file stem overrides, e.g. ``{test: test_2017_flickr}``.
        data_dir: where known corpora live (else ``--data-dir``, $RNNKIT_DATA, the cache).
        skip_empty: drop pairs whose lines are both empty instead of failing.
        tokenizer: "bpe", "word" or "wordpiece" (one per language, trained on train).
        src_vocab_size / tgt_vocab_size / lowercase / min_freq: tokenizer settings.
        max_src_len / max_tgt_len: training pairs are cut to this many tokens (with <eos>),
            at least 2 (one word and <eos>); the run's header says how many pairs were cut.
        train_limit: use only the first N training pairs (smoke tests).
        batch_size / eval_batch_size: sentence pairs per batch.
        label_smoothing: of the training cross-entropy.
        beam_size / length_penalty: decoding of non-valid splits (1 = greedy); the length
            penalty alpha is a finite number >= 0.
        max_decode_len: output tokens at most ``min(max_decode_len, 2 * S + 10)``.
    """

    source: str = "multi30k"
    src_lang: str = "de"
    tgt_lang: str = "en"
    splits: dict[str, str] = field(default_factory=dict)
    data_dir: str | None = None
    skip_empty: bool = False
    tokenizer: Literal["bpe", "word", "wordpiece"] = "bpe"
    src_vocab_size: int = 8000
    tgt_vocab_size: int = 6000
    lowercase: bool = False
    min_freq: int = 2
    max_src_len: int = 100
    max_tgt_len: int = 100
    train_limit: int | None = None
    batch_size: int = 64
    eval_batch_size: int = 128
    label_smoothing: float = 0.1
    beam_size: int = 5
    length_penalty: float = 0.6
    max_decode_len: int = 100

    #: keys that change only how the model is evaluated: a mid-epoch resume may change them
    EVAL_ONLY_KEYS: ClassVar[tuple[str, ...]] = ("beam_size", "length_penalty", "max_decode_len")


class TranslateTask:
    """The translation task for :class:`~rnnkit.train.Trainer`.

    Args:
        config: the run config (``data``: :class:`TranslateDataConfig`, ``model``:
            :class:`~rnnkit.models.seq2seq.Seq2SeqConfig`).
        data_dir: overrides ``data.data_dir`` (the CLI's ``--data-dir``).
        tokenizers: ``(src, tgt)`` to reuse (evaluating a checkpoint) instead of training.
    """

    name = "translate"
    item_name = "tokens"
    loss_name = "cross-entropy (nats per target token)"  # the y-label of curves.png

    def __init__(self, config: RunConfig, *, data_dir: str | None = None,
                 tokenizers: tuple[TextTokenizer, TextTokenizer] | None = None):
        d: TranslateDataConfig = config.data
        for key in ("batch_size", "eval_batch_size", "beam_size", "max_decode_len"):
            if getattr(d, key) < 1:
                raise ConfigError(f"config key 'data.{key}': expected a positive integer, "
                                  f"got {getattr(d, key)}")
        for key in ("max_src_len", "max_tgt_len"):  # counted with <eos>: 1 keeps no word
            if getattr(d, key) < 2:
                raise ConfigError(f"config key 'data.{key}': expected an integer >= 2 (the "
                                  f"tokens kept, <eos> included), got {getattr(d, key)}")
        _check_length_penalty(d.length_penalty, "config key 'data.length_penalty'")
        if d.train_limit is not None and d.train_limit < 1:  # [:-5] would drop 5 pairs
            raise ConfigError(f"config key 'data.train_limit': expected a positive integer or "
                              f"null, got {d.train_limit}")
        if not 0.0 <= d.label_smoothing < 1.0:
            raise ConfigError(
                f"config key 'data.label_smoothing': expected [0, 1), got {d.label_smoothing}"
            )
        self.config, self.seed = config, config.trainer.seed
        files = resolve_parallel(d.source, d.src_lang, d.tgt_lang, splits=d.splits or None,
                                 data_dir=data_dir or d.data_dir)
        self.raw = {s: read_parallel(a, b, skip_empty=d.skip_empty) for s, (a, b) in files.items()}
        if d.train_limit:
            self.raw["train"] = self.raw["train"][:d.train_limit]
        train = self.raw["train"]
        if tokenizers is None:
            tokenizers = tuple(
                train_tokenizer((p[k] for p in train), kind=d.tokenizer, vocab_size=v,
                                lowercase=d.lowercase, min_freq=d.min_freq)
                for k, v in ((0, d.src_vocab_size), (1, d.tgt_vocab_size)))
        self.src_tok, self.tgt_tok = tokenizers
        #: training pairs cut to max_src_len / max_tgt_len: {"src", "tgt", "pairs"}
        self.truncated = {"src": 0, "tgt": 0, "pairs": 0}
        self.data = {s: self._encode(pairs, cut=s == "train") for s, pairs in self.raw.items()}
        self.model = build_model(
            Seq2Seq,
            config.model,
            self.src_tok.vocab_size,
            self.tgt_tok.vocab_size,
            pad_id=self.tgt_tok.pad_id,
            bos_id=self.tgt_tok.bos_id,
            eos_id=self.tgt_tok.eos_id,
            run=config,
        )
        self.eval_splits = tuple(s for s in self.data if s != "train")
        self.rank, self.world = 0, 1
        self._batches: dict[int, list[list[int]]] = {}

    def _encode(self, pairs: list[tuple[str, str]], cut: bool) -> list[tuple[list[int], list[int]]]:
        d: TranslateDataConfig = self.config.data
        src = self.src_tok.encode_batch([p[0] for p in pairs], add_eos=True)
        tgt = self.tgt_tok.encode_batch([p[1] for p in pairs], add_bos=True, add_eos=True)
        if cut:  # keep the first tokens and the closing <eos>, and count what was cut
            S, T = d.max_src_len, d.max_tgt_len + 1  # the target also holds <bos>
            long_s = [len(s) > S for s in src]
            long_t = [len(t) > T for t in tgt]
            src = [s[:S - 1] + s[-1:] if c else s for s, c in zip(src, long_s)]
            tgt = [t[:T - 1] + t[-1:] if c else t for t, c in zip(tgt, long_t)]
            self.truncated = {"src": sum(long_s), "tgt": sum(long_t),
                              "pairs": sum(a or b for a, b in zip(long_s, long_t))}
        return list(zip(src, tgt))

    def describe(self) -> dict[str, str]:
        """What the run's header says of the data (rnnkit.train.run)."""
        d: TranslateDataConfig = self.config.data
        n = self.truncated
        cut = (f"{n['pairs']:,} training pairs cut to max_src_len={d.max_src_len} / "
               f"max_tgt_len={d.max_tgt_len} ({n['src']:,} sources, {n['tgt']:,} targets)")
        out = {"pairs": ", ".join(f"{s} {len(v):,}" for s, v in self.data.items()),
               "vocabulary": f"{self.src_tok.vocab_size:,} {d.src_lang}, "
                             f"{self.tgt_tok.vocab_size:,} {d.tgt_lang} ({d.tokenizer})",
               "truncated": cut}
        if d.lowercase:
            out["scoring"] = "BLEU/chrF case-insensitive (data.lowercase: the output is lowercase)"
        return out

    def setup(self, rank: int, world_size: int) -> None:
        self.rank, self.world = rank, world_size

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        if epoch not in self._batches:
            lens = [len(s) for s, _ in self.data["train"]]
            b = length_buckets(lens, self.config.data.batch_size, shuffle=True,
                               seed=self.seed * 1000 + epoch)
            if self.world > 1:
                b = b[:len(b) // self.world * self.world][self.rank::self.world]
            self._batches = {epoch: b}
        return self._batches[epoch]

    def steps_per_epoch(self, epoch: int) -> int:
        return max(1, len(self._epoch_batches(epoch)))

    def train_batches(self, epoch: int, start_step: int) -> Iterator[tuple[Tensor, ...]]:
        """Length-bucketed batches (seeded per epoch); resumable at a batch index."""
        train = self.data["train"]
        for idx in self._epoch_batches(epoch)[start_step:]:
            yield self._collate([train[i] for i in idx])

    def _collate(self, items: list[tuple[list[int], list[int]]]) -> tuple[Tensor, ...]:
        pad = self.tgt_tok.pad_id
        src = _pad([s for s, _ in items], pad)  # (B, S)
        lengths = torch.tensor([len(s) for s, _ in items])
        tgt = _pad([t for _, t in items], pad)  # (B, T + 2)
        return src, lengths, tgt[:, :-1], tgt[:, 1:]

    def initial_carry(self) -> Any:
        return None

    def training_step(self, model: nn.Module, batch, carry: Any) -> StepOutput:
        dev = next(model.parameters()).device
        src, lengths, tgt_in, tgt_out = batch
        logits, _ = model(src.to(dev), lengths, tgt_in.to(dev))  # (B, T, V)
        y = tgt_out.to(dev)
        loss = F.cross_entropy(
            logits.float().flatten(0, 1),
            y.flatten(),
            ignore_index=self.tgt_tok.pad_id,
            label_smoothing=self.config.data.label_smoothing,
        )
        return StepOutput(loss, None, int((y != self.tgt_tok.pad_id).sum()))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.data or split == "train":
            raise ValueError(
                f"split {split!r} is unknown; available: {', '.join(self.eval_splits)}"
            )
        d: TranslateDataConfig = self.config.data
        metrics = self.token_loss(model, split)
        src_ids = [s for s, _ in self.data[split]]
        refs = [t for _, t in self.raw[split]]
        greedy = decode(
            model, src_ids, beam_size=1, max_len=d.max_decode_len, batch_size=d.eval_batch_size
        )
        lc = bool(d.lowercase)
        g = score_translations(self.tgt_tok.decode_batch([h["tokens"] for h in greedy]), refs,
                               lowercase=lc)
        if split == "valid" or d.beam_size == 1:
            return {**metrics, **g}
        beam = decode(model, src_ids, beam_size=d.beam_size, max_len=d.max_decode_len,
                      alpha=d.length_penalty, batch_size=max(1, d.eval_batch_size // d.beam_size))
        b = score_translations(self.tgt_tok.decode_batch([h["tokens"] for h in beam]), refs,
                               lowercase=lc)
        return {**metrics, **b, "bleu_greedy": g["bleu"], "chrf_greedy": g["chrf"]}

    @torch.no_grad()
    def token_loss(self, model: nn.Module, split: str) -> dict[str, float]:
        """Mean cross-entropy per target token (nats, no smoothing) and its exp."""
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        data, total, n = self.data[split], 0.0, 0
        for idx in length_buckets(
            [len(s) for s, _ in data], self.config.data.eval_batch_size, shuffle=False
        ):
            src, lengths, tgt_in, tgt_out = self._collate([data[i] for i in idx])
            logits, _ = model(src.to(dev), lengths, tgt_in.to(dev))
            y = tgt_out.to(dev)
            total += float(F.cross_entropy(logits.float().flatten(0, 1), y.flatten(),
                                           ignore_index=self.tgt_tok.pad_id, reduction="sum"))
            n += int((y != self.tgt_tok.pad_id).sum())
        model.train(was)
        loss = total / max(n, 1)
        return {"loss": loss, "ppl": math.exp(min(loss, 50.0))}

    def data_splits(self) -> dict[str, Any]:
        """Each split's (source ids, target ids) pairs, hashed for ``--resume``."""
        return dict(self.data)

    def write_assets(self, directory: Path) -> None:
        self.src_tok.save(directory / "src_tokenizer.json")
        self.tgt_tok.save(directory / "tgt_tokenizer.json")


def build_translate_task(config: RunConfig, data_dir: str | None = None) -> TranslateTask:
    return TranslateTask(config, data_dir=data_dir)


def load_translate_task(directory: Path, config: RunConfig,
                        data_dir: str | None = None) -> TranslateTask:
    """The task of a checkpoint's run with the checkpoint's tokenizers (a resume: trained
    again, a WordPiece vocabulary can number its tokens otherwise)."""
    return TranslateTask(config, data_dir=data_dir, tokenizers=_read_tokenizers(Path(directory)))


# --------------------------------------------------------------------------- checkpoints


def _read_tokenizers(d: Path) -> tuple[TextTokenizer, TextTokenizer]:
    toks = []
    for name in ("src_tokenizer.json", "tgt_tokenizer.json"):
        if not (d / name).is_file():
            raise CheckpointError(f"{d}: not a complete translation checkpoint ({name} is missing)")
        try:
            toks.append(TextTokenizer.load(d / name))
        except ValueError as e:
            raise CheckpointError(f"{d / name}: corrupted ({e})") from None
    return toks[0], toks[1]


def load_translate_checkpoint(directory: str | Path, *, map_location: str = "cpu"):
    """``(model (eval mode), src tokenizer, tgt tokenizer, run config)``."""
    d = Path(directory)
    _, cfg = read_run_config(d, task="translate")
    src_tok, tgt_tok = _read_tokenizers(d)
    model = build_model(
        Seq2Seq,
        cfg.model,
        src_tok.vocab_size,
        tgt_tok.vocab_size,
        pad_id=tgt_tok.pad_id,
        bos_id=tgt_tok.bos_id,
        eos_id=tgt_tok.eos_id,
        run=cfg,
        training=False,
        source=d / "config.json",
    )
    load_model_weights(model, d)
    model.to(map_location).eval()
    return model, src_tok, tgt_tok, cfg


def translate(directory: str | Path, texts: list[str], *, beam_size: int = 5, max_len: int = 100,
              alpha: float | None = None) -> list[dict[str, Any]]:
    """Translate ``texts`` with a checkpoint. Returns ``[{"input", "translation", "score",
    "tokens": [source pieces], "output_tokens": [target pieces], "attention": (T', S) list}]``."""
    model, src_tok, tgt_tok, cfg = load_translate_checkpoint(directory)
    a = cfg.data.length_penalty if alpha is None else alpha
    _check_length_penalty(a, "alpha")
    src_ids = src_tok.encode_batch(texts, add_eos=True)
    hyps = decode(model, src_ids, beam_size=beam_size, max_len=max_len, alpha=a)
    out = []
    for text, ids, h in zip(texts, src_ids, hyps):
        out.append({"input": text, "translation": tgt_tok.decode(h["tokens"]), "score": h["score"],
                    "tokens": [src_tok.id_to_token(i) for i in ids],
                    "output_tokens": [tgt_tok.id_to_token(i) for i in h["tokens"]] + ["<eos>"],
                    "attention": h["attention"].tolist()})
    return out


def predict_inputs(checkpoint: str | Path, inputs: list[str], *, beam_size: int = 5,
                   max_len: int = 100) -> list[dict[str, Any]]:
    """``rnnkit predict`` for translation checkpoints: one translation per input line."""
    out = translate(checkpoint, inputs, beam_size=beam_size, max_len=max_len)
    return [{"input": r["input"], "translation": r["translation"], "score": round(r["score"], 4),
             "text": r["translation"]} for r in out]


def evaluate_translate_checkpoint(
    directory: str | Path,
    *,
    split: str = "test",
    beam_size: int | None = None,
    data_dir: str | None = None,
    plot: str | Path | None = None,
    sentence: int = 0,
    hypotheses: str | Path | None = None,
) -> dict[str, Any]:
    """Decode ``split`` of the checkpoint's own data and score it (loss, BLEU, chrF, greedy and
    beam). ``plot`` writes the attention heatmap of sentence ``sentence``; ``hypotheses``
    writes the detokenised outputs, one per line."""
    model, src_tok, tgt_tok, cfg = load_translate_checkpoint(directory)
    if beam_size is not None:
        cfg.data.beam_size = beam_size
    task = TranslateTask(cfg, data_dir=data_dir, tokenizers=(src_tok, tgt_tok))
    if split not in task.eval_splits:
        raise ValueError(
            f"--split {split}: not in the data; available: {', '.join(task.eval_splits)}"
        )
    d: TranslateDataConfig = cfg.data
    metrics = task.evaluate(model, split if split != "valid" else "valid")
    if split == "valid" and d.beam_size > 1:  # the task decodes valid greedily; add the beam
        hyps = decode(model, [s for s, _ in task.data[split]], beam_size=d.beam_size,
                      max_len=d.max_decode_len, alpha=d.length_penalty)
        b = score_translations(tgt_tok.decode_batch([h["tokens"] for h in hyps]),
                               [t for _, t in task.raw[split]], lowercase=bool(d.lowercase))
        metrics = {**metrics, "bleu_greedy": metrics["bleu"], "chrf_greedy": metrics["chrf"], **b}
    result: dict[str, Any] = {
        "split": split,
        "sentences": len(task.data[split]),
        "beam_size": d.beam_size,
        "length_penalty": d.length_penalty,
        **metrics,
    }
    if hypotheses is not None or plot is not None:
        src_ids = [s for s, _ in task.data[split]]
        hyps = decode(model, src_ids, beam_size=d.beam_size, max_len=d.max_decode_len,
                      alpha=d.length_penalty)
        if hypotheses is not None:
            p = Path(hypotheses)
            tmp = p.with_name(f".{p.name}.tmp")
            tmp.write_text(
                "".join(tgt_tok.decode(h["tokens"]) + "\n" for h in hyps), encoding="utf-8"
            )
            tmp.replace(p)
            result["hypotheses"] = str(p)
        if plot is not None:
            if not 0 <= sentence < len(hyps):
                raise ValueError(f"sentence={sentence}: expected 0 <= sentence < {len(hyps)}")
            h = hyps[sentence]
            plot_attention(h["attention"], [src_tok.id_to_token(i) for i in src_ids[sentence]],
                           [tgt_tok.id_to_token(i) for i in h["tokens"]] + ["<eos>"], plot,
                           title=task.raw[split][sentence][0])
            result["plot"] = str(plot)
    return result


SPEC = register_task(TaskSpec(
    name="translate",
    data_config=TranslateDataConfig,
    model_config=Seq2SeqConfig,
    build=build_translate_task,
    description="translation (parallel text, BiRNN encoder, attentive decoder, BLEU/chrF)",
    load=load_translate_task,
    evaluate=evaluate_translate_checkpoint,
    predict=predict_inputs,
    predictor=text_predictor,
))
