"""The recurrent detectors catch an injected spike; streaming equals batch; checkpoints round-trip."""

import numpy as np
import pytest
import torch

from rnnkit.anomaly.detectors import DetectorConfig, build_detector, load_detector
from rnnkit.anomaly.streaming import StreamingScorer

SPIKE = 400


def _surprise(score):
    """Invert score = s / (1 + s): the surprise -ln(tail probability)."""
    return score / (1 - score)


@pytest.fixture(scope="module")
def series():
    t = np.arange(480)
    x = np.sin(2 * np.pi * t / 40) + 0.05 * np.random.default_rng(0).normal(size=len(t))
    x[SPIKE] += 2.5  # an injected spike, 50x the noise
    return x


def _fit(series, **kw):
    torch.set_num_threads(1)
    cfg = DetectorConfig(**{"hidden_size": 16, "max_epochs": 60, "patience": 20, "lr": 0.01, "window": 12, **kw})
    return build_detector(cfg).fit(series, fit_end=240)


@pytest.fixture(scope="module")
def prediction(series):
    return _fit(series, kind="prediction", horizon=3)


@pytest.fixture(scope="module")
def reconstruction(series):
    return _fit(series, kind="reconstruction", max_epochs=25)


def test_prediction_detector_catches_the_spike(prediction, series):
    s = prediction.score(series)
    assert s.shape == series.shape and (s[:3] == 0).all()  # rows t < l have no error vector
    assert int(np.argmax(s)) == SPIKE
    normal = np.r_[s[240:SPIKE], s[SPIKE + 4:]]  # the spike enters e_t for l = 3 more rows
    assert _surprise(s[SPIKE]) > 5 * _surprise(normal.max())


def test_reconstruction_detector_catches_the_spike(reconstruction, series):
    s = reconstruction.score(series)
    assert (s[:11] == 0).all()  # rows t < L - 1 have no window
    L = reconstruction.config.window
    inside = s[SPIKE:SPIKE + L]  # every window holding the spike
    outside = np.r_[s[240:SPIKE], s[SPIKE + L:]]
    assert SPIKE <= int(np.argmax(s)) < SPIKE + L
    assert _surprise(inside.max()) > 5 * _surprise(outside.max())


def test_fit_uses_only_the_fit_rows(series):
    a = _fit(series, kind="prediction", horizon=2, max_epochs=5)
    b = _fit(np.r_[series[:240], np.full(240, 1e6)], kind="prediction", horizon=2, max_epochs=5)
    assert (a.mean, a.std, a.train_end) == (b.mean, b.std, b.train_end)
    np.testing.assert_allclose(a.base.mean, b.base.mean)


@pytest.mark.parametrize("error_model", ["validation", "rolling"])
def test_streaming_equals_batch_prediction(prediction, series, error_model):
    prediction.config.error_model, prediction.config.rolling_window, prediction.config.refit_every = error_model, 80, 25
    try:
        batch = prediction.score(series)
        stream = StreamingScorer(prediction).update_many(series)
    finally:
        prediction.config.error_model = "validation"
    np.testing.assert_allclose(stream, batch, atol=2e-5)


def test_streaming_equals_batch_reconstruction(reconstruction, series):
    x = series[:160]
    np.testing.assert_allclose(StreamingScorer(reconstruction).update_many(x), reconstruction.score(x), atol=2e-5)


def test_checkpoint_round_trip(prediction, series, tmp_path):
    prediction.save(tmp_path / "det")
    loaded = load_detector(tmp_path / "det")
    assert loaded.config == prediction.config
    np.testing.assert_allclose(loaded.score(series), prediction.score(series), atol=1e-12)


def test_bad_configs_and_short_series():
    with pytest.raises(ValueError, match=r"detector.kind='forecast'"):
        build_detector(DetectorConfig(kind="forecast"))
    with pytest.raises(ValueError, match=r"fit rows \[0, 20\) of a 50-row series are too few"):
        build_detector(DetectorConfig(kind="reconstruction", window=16)).fit(np.zeros(50), fit_end=20)
    with pytest.raises(RuntimeError, match="not fitted"):
        build_detector(DetectorConfig()).score(np.zeros(10))
    # at build time, not when a saved detector first scores (rolling) or silently (the rest)
    for key, value, want in [("grad_clip", -1.0, "a positive norm"), ("batch_size", 0, "a positive"),
                             ("patience", -3, "an integer >= 0"), ("rolling_window", 0, "an integer >= 2"),
                             ("refit_every", 0, "a positive integer")]:
        with pytest.raises(ValueError, match=rf"{key}={value}: expected {want}"):
            build_detector(DetectorConfig(**{key: value}))
    # a rolling window no longer than the error vector never refits: it was the validation model
    with pytest.raises(ValueError, match=r"rolling_window=4: expected more rows than the error "
                       r"vector's length \(4\)"):
        build_detector(DetectorConfig(error_model="rolling", rolling_window=4, horizon=4))
    with pytest.raises(ValueError, match=r"rolling_window=16: .*length \(16\)"):
        build_detector(DetectorConfig(kind="reconstruction", window=16, error_model="rolling",
                                      rolling_window=16))
    build_detector(DetectorConfig(error_model="rolling", rolling_window=5, horizon=4))


@pytest.mark.parametrize("kind", ["prediction", "reconstruction"])
def test_fit_under_the_trainer_is_the_plain_loop(series, kind):
    """Detector.fit runs rnnkit.train.Trainer; its weights are those of the plain loop it
    replaced (validate, then train one epoch; early stopping; best weights kept), exactly."""
    import copy
    import math

    # lr 0.1: both stop early (prediction after 8 of 12 epochs, reconstruction after 4)
    cfg = DetectorConfig(kind=kind, hidden_size=8, window=8, horizon=2, lr=0.1, max_epochs=12,
                         patience=1, batch_size=32)
    torch.set_num_threads(1)
    fitted = build_detector(cfg).fit(series, fit_end=240)
    det = build_detector(cfg)
    det.prepare(series, 240)
    opt = torch.optim.Adam(det.model.parameters(), lr=cfg.lr)
    best, best_state, bad = math.inf, None, 0
    for epoch in range(1, cfg.max_epochs + 1):
        v = det.val_loss()
        if v < best:
            best, best_state, bad = v, copy.deepcopy(det.model.state_dict()), 0
        else:
            bad += 1
            if bad > cfg.patience:
                break
        det.model.train()
        for batch in det.batches(epoch):
            loss = det.loss(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(det.model.parameters(), cfg.grad_clip)
            opt.step()
    assert epoch < cfg.max_epochs and fitted.history == {"epochs": epoch, "best_val_mse": best}
    for k, v in fitted.model.state_dict().items():
        assert torch.equal(v, best_state[k]), k


@pytest.mark.parametrize("kind, cell", [("prediction", "deep_lru"), ("reconstruction", "lru"),
                                        ("reconstruction", "mlstm"), ("reconstruction", "mamba")])
def test_a_block_stack_or_a_state_that_is_not_the_output_catches_the_spike(series, kind, cell):
    """``cell`` a block stack, or a cell whose state is not its output (the LRU's complex
    state, the mLSTM's matrix memory, which the head could not read): the encoder-decoder
    starts its reconstruction from the encoder's output at the window's last step."""
    det = _fit(series, kind=kind, cell=cell, **({"horizon": 3} if kind == "prediction" else
                                                 {"max_epochs": 25}))
    s = det.score(series)
    span = 4 if kind == "prediction" else det.config.window
    inside, outside = s[SPIKE:SPIKE + span], np.r_[s[240:SPIKE], s[SPIKE + span:]]
    assert SPIKE <= int(np.argmax(s)) < SPIKE + span
    assert _surprise(inside.max()) > 3 * _surprise(outside.max())
