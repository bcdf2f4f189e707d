"""CoNLL-U and CoNLL-2003 readers, BIO/BIOES conversion, the known UD EWT dataset."""
import gzip
import itertools
import random
import warnings
from pathlib import Path

import pytest

from rnnkit.data.conll import (
    KNOWN_TAGGING,
    ConllError,
    Sentence,
    check_span_tags,
    convert_tags,
    detect_scheme,
    read_columns,
    read_conllu,
    read_tagged,
    resolve_tagging_data,
    to_bio,
    to_bioes,
)
from rnnkit.data.registry import ChecksumWarning

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"

CONLLU = """\
# newdoc id = d1
# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
4.1\tknows\tknow\tVERB\tVBZ\t_\t_\t_\t4:conj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_conllu_upos_xpos_skips_ranges_empty_nodes_and_comments(tmp_path):
    p = write(tmp_path / "a.conllu", CONLLU)
    s = read_conllu(p)
    assert [x.words for x in s] == [["I", "do", "n't", "know", "."], ["Yes"]]
    assert s[0].tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"] and s[1].tags == ["INTJ"]
    assert s[0].lines == [4, 6, 7, 8, 10] and s[1].lines == [13]
    assert read_conllu(p, column="xpos")[0].tags == ["PRP", "VBP", "RB", "VB", "."]
    gz = write(tmp_path / "b.conllu.gz", CONLLU, gz=True)
    assert [(x.words, x.tags) for x in read_conllu(gz)] == [(x.words, x.tags) for x in s]
    assert read_tagged(gz)[0].tags == s[0].tags  # format detected from the name


@pytest.mark.parametrize("bad, line, expected", [
    ("1\tI\tI\tPRON\tPRP\t_\t0\troot\t_", 1, "expected 10 tab-separated CoNLL-U columns"),
    ("1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n3\tx\tx\tX\tX\t_\t1\tdep\t_\t_", 2, "word ID '3'; expected 2"),
    ("1\t\tI\tPRON\tPRP\t_\t0\troot\t_\t_", 1, "empty FORM"),
    ("1\tI\tI\t_\tPRP\t_\t0\troot\t_\t_", 1, "UPOS column is '_'; expected a tag"),
    ("# c\n\n1a\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_", 3, "word ID '1a'"),
])
def test_malformed_conllu_names_file_line_and_expectation(tmp_path, bad, line, expected):
    p = write(tmp_path / "bad.conllu", bad + "\n")
    with pytest.raises(ConllError, match=rf"bad\.conllu:{line}: .*{expected}"):
        read_conllu(p)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ConllError, match=r"empty\.conllu: file .*; expected tagged sentences"):
        read_conllu(write(tmp_path / "empty.conllu", "\n\n"))
    with pytest.raises(ConllError, match="no sentences"):
        read_conllu(write(tmp_path / "c.conllu", "# only a comment\n"))
    with pytest.raises(FileNotFoundError, match="nope.conllu: no such file"):
        read_conllu(tmp_path / "nope.conllu")


def test_conll2003_columns(tmp_path):
    text = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n"
            "\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n")
    p = write(tmp_path / "train.txt", text)
    s = read_columns(p)
    assert [x.words for x in s] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert s[1].tags == ["B-PER", "I-PER"] and s[1].lines == [8, 9]
    assert read_columns(p, tag_column=1)[0].tags == ["NNP", "VBZ", "JJ"]  # POS column, no scheme
    assert read_tagged(p)[0].tags == ["B-ORG", "O", "B-MISC"]  # 4 columns: not CoNLL-U


def test_conll2003_errors(tmp_path):
    p = write(tmp_path / "x.txt", "EU B-ORG\nrejects\n")
    with pytest.raises(ConllError, match=r"x\.txt:2: expected at least 2 whitespace-separated columns"):
        read_columns(p)
    p = write(tmp_path / "y.txt", "EU NNP B-ORG\nrejects VBZ B-VP O\n")
    with pytest.raises(ConllError, match=r"y\.txt:2: expected 3 columns like line 1, got 4"):
        read_columns(p)
    p = write(tmp_path / "z.txt", "EU B-ORG\nrejects O\n\nPeter PER\n")
    with pytest.raises(ConllError, match=r"z\.txt:4: tag 'PER'; expected O or B/I-TYPE \(BIO"):
        read_columns(p, scheme="bio")
    p = write(tmp_path / "w.txt", "EU S-ORG\nrejects O\n")
    with pytest.raises(ConllError, match=r"w\.txt:1: tag 'S-ORG'; expected O or B/I-TYPE"):
        read_columns(p, scheme="bio")
    assert read_columns(p)[0].tags == ["S-ORG", "O"]  # auto: BIOES


def test_scheme_conversion_by_hand():
    bio = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC", "O", "B-X"]
    bioes = ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "I-LOC", "E-LOC", "O", "S-X"]
    assert to_bioes(bio) == bioes
    assert to_bio(bioes) == bio
    # IOB1 (original CoNLL-2003): I- starts a span unless it continues one of the same type
    assert to_bio(["I-PER", "I-PER", "I-LOC", "O", "I-X", "B-X"]) == \
        ["B-PER", "I-PER", "B-LOC", "O", "B-X", "B-X"]
    assert to_bioes(["I-PER", "I-LOC"]) == ["S-PER", "S-LOC"]
    assert detect_scheme(bio) == "bio" and detect_scheme(bioes) == "bioes"
    assert detect_scheme(["NOUN", "O"]) == "none" and detect_scheme(["O", "O"]) == "none"


@pytest.mark.parametrize("bad", ["B_PER", "LOC", "0", "B-", "X-PER", "b-PER", "OO", ""])
def test_malformed_span_tags_are_never_rewritten(bad):
    """_split used to take any tag as a 2-character prefix and a type: B_PER -> B-PER,
    LOC -> S-C."""
    want = rf"tag {bad!r} is not O or B-/I-/E-/S- followed by a type"
    for to in ("bio", "bioes"):
        with pytest.raises(ValueError, match=want):
            convert_tags(["B-PER", "I-PER", bad], to)
    assert convert_tags(["B-PER", bad], "none") == ["B-PER", bad]  # no scheme: as read
    with pytest.raises(ValueError, match=r"^tag 'B_PER' is not O or B-/I-/E-/S-"):
        convert_tags(["B_PER", "I_PER", "LOC"], "bioes")  # the probe's case, whole
    with pytest.raises(ConllError, match=rf"^f\.txt:8: {want} \(why\)$"):
        check_span_tags([Sentence(["a", "b"], ["O", "B-X"], [1, 2]),
                         Sentence(["c", "d"], ["I-X", bad], [7, 8])], "f.txt", "why")


def test_well_formed_span_tags_still_convert():
    assert convert_tags(["B-PER", "I-PER", "O", "B-LOC"], "bioes") == \
        ["B-PER", "E-PER", "O", "S-LOC"]
    assert convert_tags(["S-B-X", "B-I-PER", "E-I-PER"], "bio") == ["B-B-X", "B-I-PER", "I-I-PER"]
    check_span_tags([Sentence(["a", "b", "c"], ["O", "S-X", "E-X"], [1, 2, 3])], "f", "why")


def test_scheme_conversion_round_trips_on_all_short_sequences():
    tags = ["O", "B-A", "I-A", "B-B", "I-B"]
    for n in range(1, 5):
        for seq in itertools.product(tags, repeat=n):
            bio = to_bio(seq)  # repairs I- after O / another type
            assert to_bio(to_bioes(bio)) == bio
            assert to_bioes(to_bio(to_bioes(bio))) == to_bioes(bio)
            spans = sum(t.startswith("B-") for t in bio)
            assert sum(t[0] in "BS" for t in to_bioes(bio)) == spans
    rng = random.Random(0)
    seq = [rng.choice(tags) for _ in range(200)]
    assert to_bio(to_bioes(to_bio(seq))) == to_bio(seq)


def _fake_ewt(root: Path, gz_train: bool = True) -> Path:
    d = root / "ud_english_ewt"
    d.mkdir(parents=True)
    write(d / ("en_ewt-ud-train.conllu" + (".gz" if gz_train else "")), CONLLU, gz=gz_train)
    write(d / "en_ewt-ud-dev.conllu", CONLLU)
    write(d / "en_ewt-ud-test.conllu", CONLLU)
    return d


def test_known_dataset_lookup(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"data_dir .*: no en_ewt-ud-train\.conllu\[\.gz\]"):
        resolve_tagging_data("ud_english_ewt", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="not found in .* and download is off"):
        resolve_tagging_data("ud_english_ewt", download=False)
    d = _fake_ewt(tmp_path / "data")
    with pytest.warns(ChecksumWarning, match="differs from the canonical ud_english_ewt"):
        files = resolve_tagging_data("ud_english_ewt", data_dir=tmp_path / "data")
    assert files == {"train": d / "en_ewt-ud-train.conllu.gz", "valid": d / "en_ewt-ud-dev.conllu",
                     "test": d / "en_ewt-ud-test.conllu"}
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "data"))
    with pytest.warns(ChecksumWarning):
        assert resolve_tagging_data("ud_english_ewt") == files
    assert set(KNOWN_TAGGING["ud_english_ewt"].splits) == {"train", "valid", "test"}


def test_folder_and_file_sources(tmp_path):
    d = _fake_ewt(tmp_path, gz_train=False)
    assert resolve_tagging_data(d) == {"train": d / "en_ewt-ud-train.conllu",
                                       "valid": d / "en_ewt-ud-dev.conllu",
                                       "test": d / "en_ewt-ud-test.conllu"}
    assert resolve_tagging_data(d / "en_ewt-ud-dev.conllu") == {"train": d / "en_ewt-ud-dev.conllu"}
    write(d / "old-train.conllu", CONLLU)
    with pytest.raises(FileNotFoundError, match="several train files"):
        resolve_tagging_data(d)
    with pytest.raises(FileNotFoundError, match="neither a known tagging dataset"):
        resolve_tagging_data(tmp_path / "missing")


@pytest.mark.datasets
def test_real_ud_english_ewt_counts():
    if not (DATASETS / "ud_english_ewt").is_dir():
        pytest.skip(f"{DATASETS}/ud_english_ewt is absent (the shared datasets folder)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChecksumWarning)  # the shared copy is the canonical one
        files = resolve_tagging_data("ud_english_ewt", data_dir=DATASETS)
    counts = {s: read_conllu(p) for s, p in files.items()}
    assert {s: len(v) for s, v in counts.items()} == {"train": 12544, "valid": 2001, "test": 2077}
    assert {s: sum(map(len, v)) for s, v in counts.items()} == \
        {"train": 204577, "valid": 25147, "test": 25094}
    assert len({t for s in counts["train"] for t in s.tags}) == 17


def test_huge_cells_are_not_echoed_in_full(tmp_path):
    big = "z" * 1_000_000
    cases = [
        (write(tmp_path / "a.conllu", f"{big}\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n"),
         read_conllu, r"a\.conllu:1: word ID 'z{40}'\.\.\. \(1,000,000 characters\); expected 1"),
        (write(tmp_path / "b.txt", f"EU B-ORG\nrejects {big}\n"), lambda p: read_columns(p, scheme="bio"),
         r"b\.txt:2: tag 'z{40}'\.\.\. \(1,000,000 characters\); expected O or B/I-TYPE"),
    ]
    for p, read, message in cases:
        with pytest.raises(ConllError, match=message) as e:
            read(p)
        assert len(str(e.value)) < 400
