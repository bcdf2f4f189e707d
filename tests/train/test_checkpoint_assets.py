"""config.json binds the task's asset files (vocab.json, labels.json, ...) by SHA-256, and
its own header fields (format_version, task) are checked: an edit is a one-line error, never
another label or another token."""

from __future__ import annotations

import json

import pytest
from torch import nn

from rnnkit.commands import main as cli
from rnnkit.train import checkpoint as ck


def _ckpt(tmp_path, assets=None):
    labels = {"classes": ["neg", "pos"], "multi_label": False}

    def write(d):
        (d / "labels.json").write_text(json.dumps(labels) + "\n")
        (d / "tokenizer.json").write_text(json.dumps({"vocab": {"a": 0, "b": 1}}) + "\n")

    return ck.write_checkpoint(tmp_path / "c", model_state=nn.Linear(2, 2).state_dict(),
                               config={"task": "classify"}, task="classify", version="0",
                               write_assets=assets or write)


def _edit_config(d, change):
    meta = json.loads((d / "config.json").read_text())
    change(meta)
    (d / "config.json").write_text(json.dumps(meta))


def test_config_json_records_each_asset_sha256(tmp_path):
    d = _ckpt(tmp_path)
    meta = ck.read_config(d)
    assert meta[ck.ASSETS_SHA256] == {"labels.json": ck.file_sha256(d / "labels.json"),
                                      "tokenizer.json": ck.file_sha256(d / "tokenizer.json")}


@pytest.mark.parametrize("name", ["labels.json", "tokenizer.json"])
def test_an_edited_asset_is_refused_naming_it(tmp_path, name):
    d = _ckpt(tmp_path)
    m = json.loads((d / name).read_text())
    if name == "labels.json":
        m["classes"].reverse()  # predict would print the other label
    else:
        m["vocab"] = {"a": 1, "b": 0}
    (d / name).write_text(json.dumps(m) + "\n")
    with pytest.raises(ck.CheckpointError) as e:
        ck.read_config(d)
    msg = str(e.value)
    assert "\n" not in msg and str(d / name) in msg and "SHA-256" in msg, msg


def test_a_recorded_asset_that_is_missing_is_named(tmp_path):
    d = _ckpt(tmp_path)
    (d / "labels.json").unlink()
    with pytest.raises(ck.CheckpointError, match=r"not a complete checkpoint \(labels.json is missing\)"):
        ck.read_config(d)


def test_a_written_checkpoint_is_format_2(tmp_path):
    assert json.loads((_ckpt(tmp_path) / "config.json").read_text())["format_version"] == 2


@pytest.mark.parametrize("v1", [{"format_version": 1}, {}], ids=["1", "no-field"])
def test_format_1_checkpoints_without_recorded_hashes_still_load(tmp_path, v1):
    """Written before the hashes existed (format 1, or no format_version at all)."""
    d = _ckpt(tmp_path)

    def old(m):
        m.pop(ck.ASSETS_SHA256)
        m.pop("format_version")
        m.update(v1)

    _edit_config(d, old)
    (d / "labels.json").write_text('{"classes": ["x", "y"]}\n')  # nothing to check it against
    assert ck.read_config(d, task="classify")["task"] == "classify"


def test_format_1_checkpoints_with_recorded_hashes_are_checked(tmp_path):
    d = _ckpt(tmp_path)
    _edit_config(d, lambda m: m.__setitem__("format_version", 1))
    ck.read_config(d)
    (d / "labels.json").write_text('{"classes": ["x", "y"]}\n')
    with pytest.raises(ck.CheckpointError, match=r"labels\.json: does not match the SHA-256"):
        ck.read_config(d)


@pytest.mark.parametrize("edit", ["delete", "null"])
def test_deleting_the_recorded_hashes_of_a_format_2_checkpoint_is_refused(tmp_path, edit):
    """Deleting asset_sha256 from config.json must not turn the asset check off."""
    d = _ckpt(tmp_path)
    _edit_config(d, (lambda m: m.pop(ck.ASSETS_SHA256)) if edit == "delete"
                 else (lambda m: m.__setitem__(ck.ASSETS_SHA256, None)))
    (d / "labels.json").write_text('{"classes": ["x", "y"]}\n')
    with pytest.raises(ck.CheckpointError) as e:
        ck.read_config(d)
    msg = str(e.value)
    assert "\n" not in msg and str(d / "config.json") in msg and "'asset_sha256'" in msg, msg


@pytest.mark.parametrize("value", ["x", [1], {"labels.json": 5}, {"labels.json": "ab" * 32},
                                   {"../labels.json": "0" * 64}])
def test_a_bad_asset_sha256_field_is_one_line(tmp_path, value):
    d = _ckpt(tmp_path)
    _edit_config(d, lambda m: m.__setitem__(ck.ASSETS_SHA256, value))
    with pytest.raises(ck.CheckpointError) as e:
        ck.read_config(d)
    msg = str(e.value)
    assert "\n" not in msg and ("config.json" in msg or "labels.json" in msg), msg


@pytest.mark.parametrize("version", [99, "x", 1.0, True, None])
def test_an_unknown_format_version_is_refused(tmp_path, version):
    d = _ckpt(tmp_path)
    _edit_config(d, lambda m: m.__setitem__("format_version", version))
    with pytest.raises(ck.CheckpointError) as e:
        ck.read_config(d)
    msg = str(e.value)
    assert "config.json" in msg and "'format_version'" in msg and "expected one of 1" in msg, msg


def test_a_missing_format_version_reads_as_version_1(tmp_path):
    d = _ckpt(tmp_path)
    _edit_config(d, lambda m: m.pop("format_version"))
    ck.read_config(d)


@pytest.mark.parametrize("task", [["lm"], {"lm": 1}, 3, ""])
def test_a_task_that_is_not_a_name_is_refused(tmp_path, task):
    d = _ckpt(tmp_path)
    _edit_config(d, lambda m: m.__setitem__("task", task))
    with pytest.raises(ck.CheckpointError) as e:
        ck.read_config(d)
    assert "config.json" in str(e.value) and "field 'task'" in str(e.value)


@pytest.mark.parametrize("command", [["evaluate"], ["generate", "--length", "2"],
                                     ["predict", "ab"]])
def test_task_list_in_the_cli_is_one_line_not_unhashable(tmp_path, capsys, command):
    d = _ckpt(tmp_path)
    _edit_config(d, lambda m: m.__setitem__("task", ["lm"]))
    assert cli([command[0], str(d), *command[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "field 'task'" in err and "unhashable" not in err, err


def test_an_lm_checkpoint_with_an_edited_vocab_is_refused_by_generate(trained, tmp_path, capsys):
    import shutil

    d = shutil.copytree(trained / "best", tmp_path / "best")
    v = json.loads((d / "vocab.json").read_text())
    v["itos"][0], v["itos"][1] = v["itos"][1], v["itos"][0]
    (d / "vocab.json").write_text(json.dumps(v))
    assert cli(["generate", str(d), "--prompt", "Th", "--length", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "vocab.json" in err and "SHA-256" in err, err
