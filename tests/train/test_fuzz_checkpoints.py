"""Property-based tests of the checkpoint readers (issue 19, the fuzzing harness).

Each property takes a real checkpoint (the tiny char LSTM's ``last/``), mutates one file and
reads it the way the CLI does. The reader must either give back the same data (the same
weights; the same trainer state) or raise the documented one-line ``CheckpointError`` naming
the file; any other exception, a hang or an allocation the machine cannot afford fails.

- ``config.json``: byte edits (truncation, a changed byte, inserted bytes, deep nesting) and
  edits of the parsed object (a value replaced by any JSON value, a key removed or added);
- ``trainer_state.json``: byte edits (caught by the SHA-256 that binds it to
  ``trainer_state.safetensors``), and object edits re-bound as a writer would, which the
  typed validation must catch;
- ``model.safetensors`` and ``trainer_state.safetensors``: byte edits of the header and the
  data (caught by safetensors' own checks and the SHA-256 of the tensors in the header).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.testing import fuzz_examples
from rnnkit.train import checkpoint as ck

_SETTINGS = dict(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-3, 3)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)

FINITE_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(obj, prefix=()):
    """Every path (tuple of keys/indices) into a parsed JSON value, the root included."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@st.composite
def json_edit(draw, obj):
    """``obj`` with one value replaced, one key removed or one key added."""
    obj = json.loads(json.dumps(obj))
    paths = list(_paths(obj))
    path = draw(st.sampled_from(paths))
    op = draw(st.sampled_from(["replace", "delete", "add"]))
    if not path:
        return draw(JSON) if op == "replace" else obj
    node = obj
    for p in path[:-1]:
        node = node[p]
    last = path[-1]
    if op == "replace" or isinstance(node, list) and op == "add":
        node[last] = draw(JSON)
    elif op == "delete":
        del node[last]
    else:
        node[draw(st.text(max_size=6))] = draw(JSON)
    return obj


@st.composite
def byte_edit(draw, data: bytes):
    """``data`` truncated, with a byte changed, with bytes inserted, or nested very deeply."""
    op = draw(st.sampled_from(["truncate", "set", "insert", "nest"]))
    i = draw(st.integers(0, max(0, len(data) - 1)))
    if op == "truncate":
        return data[:i]
    if op == "set":
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
    if op == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]
    depth = draw(st.sampled_from([10, 900, 100_000]))
    return b"[" * depth + data + b"]" * depth


def _fresh(trained, tmp_path) -> Path:
    d = tmp_path / "ckpt"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(trained / "last", d)
    return d


def _one_line(e: BaseException, names) -> None:
    msg = str(e)
    assert "\n" not in msg, msg
    assert any(n in msg for n in names), msg


# --------------------------------------------------------------------------- config.json


@pytest.fixture(scope="module")
def reference(trained):
    from rnnkit.tasks.lm import load_lm_checkpoint

    model, _, _ = load_lm_checkpoint(trained / "last")
    return {k: v.clone() for k, v in model.state_dict().items()}


def _load_lm(d, reference):
    from rnnkit.tasks.lm import load_lm_checkpoint

    try:
        model, _, _ = load_lm_checkpoint(d)
    except ck.CheckpointError as e:
        _one_line(e, ["config.json", str(d)])
        return False
    for k, v in model.state_dict().items():
        assert torch.equal(v, reference[k]), k
    return True


@settings(max_examples=fuzz_examples(60), **_SETTINGS)
@given(data=st.data())
def test_config_json_object_edits(trained, reference, tmp_path, data):
    d = _fresh(trained, tmp_path)
    meta = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(data.draw(json_edit(meta))))
    _load_lm(d, reference)


@settings(max_examples=fuzz_examples(60), **_SETTINGS)
@given(data=st.data())
def test_config_json_byte_edits(trained, reference, tmp_path, data):
    d = _fresh(trained, tmp_path)
    (d / "config.json").write_bytes(data.draw(byte_edit((d / "config.json").read_bytes())))
    _load_lm(d, reference)


@settings(max_examples=fuzz_examples(40), **_SETTINGS)
@given(key=st.sampled_from(["embedding_size", "hidden_size", "num_layers", "dropout", "cell", "extras",
                            "init_range", "tie_weights", "embedding_dropout"]),
       value=JSON | st.integers(2**20, 2**62))
def test_config_json_model_values(trained, reference, tmp_path, key, value):
    """The model section's values, where a bad one would reach the constructors or the allocator."""
    d = _fresh(trained, tmp_path)
    meta = json.loads((d / "config.json").read_text())
    meta["config"]["model"][key] = value
    (d / "config.json").write_text(json.dumps(meta))
    _load_lm(d, reference)


# --------------------------------------------------------------------------- trainer state


@pytest.fixture(scope="module")
def trainer(trained):
    """A Trainer of the tiny run, to resume (``Trainer.load``) from mutated checkpoints."""
    from rnnkit.tasks import get_task_spec
    from rnnkit.train import Trainer, load_recipe, make_fabric

    cfg = load_recipe(trained.parent / "recipe.yaml")
    fabric = make_fabric(cfg.trainer)
    fabric.launch()
    task = get_task_spec("lm").build(cfg)
    t = Trainer(cfg, task, fabric, trained.parent / "scratch")
    t.load(trained / "last")
    rng = torch.get_rng_state()
    t.reference = (json.dumps(t.state.to_json(), sort_keys=True), {
        k: v.clone() for k, v in t.optimizer.state_dict()["state"][0].items()})
    yield t
    torch.set_rng_state(rng)


def _resume(trainer, d, same: bool = True):
    """Resume from ``d``: False on the documented error; True if it loaded, to the same state
    as the unedited checkpoint when ``same`` (else to one the loop can run with)."""
    from rnnkit.train.trainer import TrainingError

    try:
        trainer.load(d)
    except (ck.CheckpointError, TrainingError) as e:
        _one_line(e, ["trainer_state", str(d)])
        return False
    if same:
        state, opt = trainer.reference
        assert json.dumps(trainer.state.to_json(), sort_keys=True) == state
        for k, v in trainer.optimizer.state_dict()["state"][0].items():
            assert torch.equal(v, opt[k]), k
        return True
    s, tc = trainer.state, trainer.tc  # what the loop does with the state first
    assert isinstance(s.epoch < tc.max_epochs and s.step >= 0 and s.batch_in_epoch >= 0, bool)
    trainer.schedule.apply(trainer.optimizer, s.step, s.epoch, 0.5)
    for p in trainer.raw_model.parameters():
        p.grad = torch.zeros_like(p)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return True


def _rebind(d):
    """Re-bind an edited trainer_state.json to its safetensors file, as a writer would."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    f = d / "trainer_state.safetensors"
    with safe_open(str(f), "pt") as s:
        meta = dict(s.metadata() or {})
        tensors = {k: s.get_tensor(k) for k in s.keys()}
    meta[ck.TRAINER_JSON_SHA256] = ck.file_sha256(d / "trainer_state.json")
    save_file(tensors, str(f), metadata=meta)


@settings(max_examples=fuzz_examples(40), **_SETTINGS)
@given(data=st.data())
def test_trainer_state_json_byte_edits(trained, trainer, tmp_path, data):
    d = _fresh(trained, tmp_path)
    before = (d / "trainer_state.json").read_bytes()
    after = data.draw(byte_edit(before))
    (d / "trainer_state.json").write_bytes(after)
    assert _resume(trainer, d) == (after == before)


@settings(max_examples=fuzz_examples(80), **_SETTINGS)
@given(data=st.data())
def test_trainer_state_json_object_edits(trained, trainer, tmp_path, data):
    d = _fresh(trained, tmp_path)
    meta = json.loads((d / "trainer_state.json").read_text())
    small = {k: v for k, v in meta.items() if k != "rng"}  # edit rng separately (its lists are long)
    edited = data.draw(json_edit(small))
    if isinstance(edited, dict):
        edited = {**edited, "rng": meta["rng"]} if data.draw(st.booleans()) else edited
    (d / "trainer_state.json").write_text(json.dumps(edited))
    _rebind(d)
    _resume(trainer, d, same=False)


@settings(max_examples=fuzz_examples(30), **_SETTINGS)
@given(which=st.sampled_from(["python", "numpy"]), index=st.integers(0, 4), value=JSON)
def test_trainer_state_rng_edits(trained, trainer, tmp_path, which, index, value):
    d = _fresh(trained, tmp_path)
    meta = json.loads((d / "trainer_state.json").read_text())
    rng = meta["rng"][which]
    if index < len(rng):
        rng[index] = value
    (d / "trainer_state.json").write_text(json.dumps(meta))
    _rebind(d)
    _resume(trainer, d, same=False)


# --------------------------------------------------------------------------- safetensors


@settings(max_examples=fuzz_examples(60), **_SETTINGS)
@given(data=st.data(), name=st.sampled_from(["model.safetensors", "trainer_state.safetensors"]),
       where=st.sampled_from(["header", "anywhere"]))
def test_safetensors_byte_edits(trained, reference, trainer, tmp_path, data, name, where):
    d = _fresh(trained, tmp_path)
    raw = (d / name).read_bytes()
    n = 8 + int.from_bytes(raw[:8], "little")
    part, rest = (raw[:n], raw[n:]) if where == "header" else (raw, b"")
    edited = data.draw(byte_edit(part)) + rest
    (d / name).write_bytes(edited)
    ok = _load_lm(d, reference) if name == "model.safetensors" else _resume(trainer, d)
    if edited == raw:
        assert ok


# --------------------------------------------------------------------------- round trip


TENSORS = st.builds(
    lambda shape, dtype, seed: torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)).to(dtype),
    st.lists(st.integers(0, 3), max_size=3), st.sampled_from([torch.float32, torch.float16, torch.bfloat16,
                                                              torch.int64, torch.uint8]),
    st.integers(0, 100))
NESTED = st.recursive(st.none() | st.integers() | st.text(max_size=4) | TENSORS,
                      lambda c: st.lists(c, max_size=3) | st.tuples(c, c)
                      | st.dictionaries(st.text("abc", min_size=1, max_size=3), c, max_size=3),
                      max_leaves=6)


def _same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    else:
        assert a == b


@settings(max_examples=fuzz_examples(40), **_SETTINGS)
@given(state=NESTED, config=st.dictionaries(st.text(max_size=5), FINITE_JSON, max_size=4))
def test_valid_checkpoints_round_trip(tmp_path, state, config):
    tensors: dict[str, torch.Tensor] = {}
    skel = ck.flatten_tensors(state, "carry", tensors)
    d = ck.write_checkpoint(tmp_path / "c", model_state={"w": torch.arange(3.0)}, config=config, task="t",
                            version="0", trainer_tensors=tensors, trainer_json={"carry": skel})
    assert ck.read_config(d)["config"] == json.loads(json.dumps(config))
    meta, t = ck.read_trainer_state(d)
    _same(state, ck.unflatten_tensors(meta["carry"], t))
