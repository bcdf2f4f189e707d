"""Gaussian models of detector errors and the anomaly score they give.

LSTM-AD (Malhotra et al. 2015) and EncDec-AD (Malhotra et al. 2016) model a ``d``-vector of
errors ``e_t`` (``d = l`` predictions of ``x_t`` made ``1..l`` steps earlier, or ``d = L``
reconstruction errors of the window ending at ``t``) as ``N(mu, Sigma)`` fitted on
validation errors.  The score of ``e_t`` is a tail probability::

    m_t   = (e_t - mu)^T Sigma^-1 (e_t - mu)          squared Mahalanobis distance
    p_t   = P(chi2_d > m_t)                            tail probability under the Gaussian
    s_t   = -ln p_t                                    surprise (chi2.logsf: no underflow)
    score = s_t / (1 + s_t)  in [0, 1)                 monotone in m_t, never saturates to 1.0

``Sigma`` is shrunk towards its diagonal, ``(1 - a) Sigma + a diag(Sigma)``, plus a ridge of
``1e-6 tr(Sigma)/d`` so that a few hundred correlated validation errors give a usable inverse.

:class:`ErrorScorer` applies a model to a stream of error vectors, either the one fitted on
the validation split ("validation", the papers' choice) or one refitted every ``every`` rows
on the errors of the last ``window`` rows ("rolling": adapts to level shifts, like NAB's
windowed Gaussian; causal, the rows being scored are never in the fit).

Example::

    g = GaussianErrorModel.fit(val_errors)     # (N, d)
    s = g.score(errors)                        # (M,) in [0, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln
from scipy.stats import chi2

__all__ = ["GaussianErrorModel", "ErrorScorer", "surprise_to_score", "chi2_log_tail"]


def chi2_log_tail(m: np.ndarray, dof: int) -> np.ndarray:
    """``ln P(chi2_dof > m)``, finite far into the tail.

    scipy's ``chi2.logsf`` underflows to ``-inf`` once the tail is below ~1e-308; there the
    asymptotic ``ln Gamma(a, y) = (a-1) ln y - y + ln(1 + (a-1)/y + (a-1)(a-2)/y^2) - ln Gamma(a)``
    (``a = dof/2``, ``y = m/2``, relative error ``O(y^-3)``) takes over.
    """
    m = np.asarray(m, dtype=np.float64)
    out = chi2.logsf(m, dof)
    far = ~np.isfinite(out) & (m > 0)
    if far.any():
        a, y = dof / 2.0, m[far] / 2.0
        out[far] = ((a - 1) * np.log(y) - y + np.log1p((a - 1) / y + (a - 1) * (a - 2) / y ** 2)
                    - gammaln(a))
    return out


def surprise_to_score(s: np.ndarray) -> np.ndarray:
    """``s / (1 + s)``: the surprise ``-ln p`` mapped monotonically into [0, 1)."""
    s = np.maximum(np.asarray(s, dtype=np.float64), 0.0)
    return s / (1.0 + s)


@dataclass
class GaussianErrorModel:
    """``N(mean, cov)`` over ``d``-dimensional error vectors, with its precision matrix."""

    mean: np.ndarray
    cov: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        d = len(self.mean)
        self.cov = np.asarray(self.cov, dtype=np.float64).reshape(d, d)
        self.precision = np.linalg.inv(self.cov)

    @property
    def dim(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, errors: np.ndarray, shrinkage: float = 0.1) -> GaussianErrorModel:
        """Mean and shrunk covariance of ``errors`` (N, d), N >= 2."""
        e = np.asarray(errors, dtype=np.float64)
        if e.ndim == 1:
            e = e[:, None]  # (N,) -> (N, 1)
        if len(e) < 2:
            raise ValueError(f"need at least 2 error vectors to fit a Gaussian, got {len(e)} "
                             "(the validation split is too short)")
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage={shrinkage}: expected a value in [0, 1]")
        d = e.shape[1]
        mu = e.mean(axis=0)
        c = np.atleast_2d(np.cov(e, rowvar=False))
        c = (1.0 - shrinkage) * c + shrinkage * np.diag(np.diag(c))
        ridge = 1e-6 * max(np.trace(c) / d, 1e-12)
        return cls(mu, c + ridge * np.eye(d))

    def mahalanobis2(self, errors: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row of ``errors`` (N, d) -> (N,)."""
        z = np.asarray(errors, dtype=np.float64).reshape(-1, self.dim) - self.mean  # (N, d)
        return np.einsum("ni,ij,nj->n", z, self.precision, z)

    def surprise(self, errors: np.ndarray) -> np.ndarray:
        """``-ln P(chi2_d > m)``, the negative log tail probability."""
        return -chi2_log_tail(self.mahalanobis2(errors), self.dim)

    def score(self, errors: np.ndarray) -> np.ndarray:
        """Anomaly score in [0, 1) (module docstring)."""
        return surprise_to_score(self.surprise(errors))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "cov": self.cov.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> GaussianErrorModel:
        return cls(np.array(d["mean"]), np.array(d["cov"]))


class ErrorScorer:
    """Scores error vectors ``e_t`` with a fixed or a rolling Gaussian (module docstring).

    Args:
        base: the model fitted on the validation split (rows ``[val_start, fit_end)``).
        mode: "validation" (always ``base``) or "rolling".
        fit_end: first row scored by a refitted model; before it ``base`` is used.
        val_start: first row whose error may enter a rolling fit.
        window / every: rolling fit on rows ``[max(val_start, t0 - window), t0)`` for the block
            ``t0 = fit_end + k * every`` holding the row.
        shrinkage: as in :meth:`GaussianErrorModel.fit`.
    """

    def __init__(self, base: GaussianErrorModel, mode: str = "validation", *, fit_end: int = 0,
                 val_start: int = 0, window: int = 2000, every: int = 100, shrinkage: float = 0.1):
        if mode not in ("validation", "rolling"):
            raise ValueError(f"error_model={mode!r}: expected 'validation' or 'rolling'")
        if window < 2 or every < 1:
            raise ValueError(f"rolling_window={window}, refit_every={every}: expected >= 2 "
                             "and >= 1")
        self.base, self.mode = base, mode
        self.fit_end, self.val_start = fit_end, val_start
        self.window, self.every, self.shrinkage = window, every, shrinkage
        self._hist_t: list[int] = []  # streaming: rows and errors that may enter a fit
        self._hist_e: list[np.ndarray] = []
        self._block, self._model = None, base

    def _fit_rows(self, t0: int) -> tuple[int, int]:
        return max(self.val_start, t0 - self.window), t0

    def _refit(self, errors: np.ndarray) -> GaussianErrorModel:
        e = errors[np.isfinite(errors).all(axis=1)]
        if len(e) < max(2, self.base.dim + 1):
            return self.base
        return GaussianErrorModel.fit(e, self.shrinkage)

    def score_batch(self, errors: np.ndarray, valid_from: int) -> np.ndarray:
        """Scores of all rows of ``errors`` (N, d); rows before ``valid_from`` score 0."""
        n = len(errors)
        out = np.zeros(n)
        if valid_from >= n:
            return out
        if self.mode == "validation":
            out[valid_from:] = self.base.score(errors[valid_from:])
            return out
        head = slice(valid_from, max(valid_from, min(n, self.fit_end)))
        out[head] = self.base.score(errors[head])
        t0 = max(self.fit_end, valid_from)
        t0 = self.fit_end + ((t0 - self.fit_end) // self.every) * self.every
        while t0 < n:
            lo, hi = self._fit_rows(t0)
            model = self._refit(errors[max(lo, valid_from):hi])
            rows = slice(max(t0, valid_from), min(n, t0 + self.every))
            out[rows] = model.score(errors[rows])
            t0 += self.every
        return out

    def push(self, t: int, e: np.ndarray) -> float:
        """Streaming: the score of row ``t`` with error vector ``e`` (rows arrive in order)."""
        e = np.asarray(e, dtype=np.float64).reshape(1, -1)
        if self.mode == "validation" or t < self.fit_end:
            s = float(self.base.score(e)[0])
        else:
            block = (t - self.fit_end) // self.every
            if block != self._block:
                lo, hi = self._fit_rows(self.fit_end + block * self.every)
                rows = [i for i, r in enumerate(self._hist_t) if lo <= r < hi]
                hist = np.stack([self._hist_e[i] for i in rows]) if rows \
                    else np.zeros((0, self.base.dim))
                self._model, self._block = self._refit(hist), block
            s = float(self._model.score(e)[0])
        if self.mode == "rolling" and t >= self.val_start:
            self._hist_t.append(t)
            self._hist_e.append(e[0])
            if len(self._hist_t) > self.window + self.every:  # older rows never enter a fit again
                del self._hist_t[0], self._hist_e[0]
        return s
