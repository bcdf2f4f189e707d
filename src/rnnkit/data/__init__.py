"""Data: readers of real formats, vocabularies, known corpora and batching.

Language modeling uses :mod:`~rnnkit.data.text` (read / tokenize / split),
:mod:`~rnnkit.data.vocab` (``Vocab``), :mod:`~rnnkit.data.registry` (known corpora,
local lookup, verified download) and :mod:`~rnnkit.data.lm` (``batchify``,
``BPTTBatches``, ``load_corpus``).
"""

from rnnkit.data.lm import BPTTBatches, LMCorpus, batchify, load_corpus
from rnnkit.data.registry import (
    KNOWN,
    ChecksumError,
    ChecksumWarning,
    DownloadError,
    KnownCorpus,
    SplitFile,
    cache_dir,
    content_sha256,
    resolve_corpus,
)
from rnnkit.data.text import EOS, TextFileError, read_bytes, read_text, split_text, tokenize
from rnnkit.data.vocab import UNK, OutOfVocabularyError, Vocab, VocabFileError

__all__ = [
    # text
    "EOS",
    "TextFileError",
    "read_bytes",
    "read_text",
    "tokenize",
    "split_text",
    # vocab
    "UNK",
    "Vocab",
    "OutOfVocabularyError",
    "VocabFileError",
    # registry
    "KNOWN",
    "KnownCorpus",
    "SplitFile",
    "ChecksumError",
    "ChecksumWarning",
    "DownloadError",
    "cache_dir",
    "content_sha256",
    "resolve_corpus",
    # lm
    "batchify",
    "BPTTBatches",
    "LMCorpus",
    "load_corpus",
]
