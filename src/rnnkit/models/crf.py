"""Linear-chain conditional random field: log-likelihood (forward algorithm) and Viterbi.

For emissions ``e_t(y)`` (a tagger's per-token scores) and a tag sequence ``y_1..y_n``
of a sentence of ``n`` tokens (Lample et al. 2016)::

    s(y)     = start[y_1] + sum_{t=1..n} e_t(y_t) + sum_{t=2..n} A[y_{t-1}, y_t] + end[y_n]
    log Z    = log sum_{y'} exp s(y')                  forward algorithm, O(n K^2):
               a_1(j) = start[j] + e_1(j)
               a_t(j) = logsumexp_i (a_{t-1}(i) + A[i, j]) + e_t(j)
               log Z  = logsumexp_j (a_n(j) + end[j])
    log p(y) = s(y) - log Z
    y*       = argmax_y s(y)                           Viterbi: max instead of logsumexp,
                                                       back-pointers, backtrack from y*_n

A batch is padded to ``T`` steps with a mask (``mask[b, t] = t < n_b``, a prefix, every
``n_b >= 1``); padded steps leave ``a`` unchanged, so a sentence's scores do not depend on
the batch it is in.

Shapes: ``B`` batch, ``T`` time steps, ``K`` tags.

Example::

    crf = CRF(num_tags=5)
    emissions = torch.randn(2, 7, 5); mask = torch.arange(7) < torch.tensor([[7], [4]])
    nll = crf(emissions, tags, mask)           # -sum_b log p(y_b | x_b), a scalar
    best = crf.decode(emissions, mask)         # [[7 tag ids], [4 tag ids]]
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CRF"]


class CRF(nn.Module):
    """Linear-chain CRF over ``K`` tags (see the module docstring).

    Parameters: ``transitions`` (K, K) with ``transitions[i, j]`` the score of tag ``j``
    following tag ``i``; ``start`` (K,) and ``end`` (K,), initialised ``U(-0.1, 0.1)``.
    """

    def __init__(self, num_tags: int):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"CRF: num_tags={num_tags}; expected at least 1")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))

    def _check(self, emissions: Tensor, mask: Tensor) -> None:
        if emissions.dim() != 3 or emissions.shape[-1] != self.num_tags:
            raise ValueError(f"CRF: emissions of shape (B, T, {self.num_tags}) expected, "
                             f"got {tuple(emissions.shape)}")
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"CRF: mask of shape {tuple(emissions.shape[:2])} expected, "
                             f"got {tuple(mask.shape)}")
        if not bool(mask[:, 0].all()):
            raise ValueError("CRF: every sequence needs at least one step (mask[:, 0] all true)")

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """``s(y)`` of the given tags (padded entries ignored) -> (B,)."""
        mask = mask.bool()
        m = mask.to(emissions.dtype)  # (B, T)
        tags = tags.masked_fill(~mask, 0)
        e = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, T)
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return (self.start[tags[:, 0]] + (e * m).sum(1) + (trans * m[:, 1:]).sum(1)
                + self.end[last])

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """``log Z`` by the forward algorithm -> (B,)."""
        self._check(emissions, mask)
        mask = mask.bool()
        a = self.start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(a.unsqueeze(2) + self.transitions, dim=1) + emissions[:, t]
            a = torch.where(mask[:, t, None], nxt, a)  # (B, K); padded steps keep a
        return torch.logsumexp(a + self.end, dim=1)

    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """``log p(y | x) = s(y) - log Z`` per sequence -> (B,)."""
        return self.score(emissions, tags, mask) - self.log_partition(emissions, mask)

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor,
                reduction: str = "sum") -> Tensor:
        """Negative log-likelihood: ``"sum"`` or ``"mean"`` over sequences, or ``"none"`` (B,)."""
        nll = -self.log_likelihood(emissions.float(), tags, mask)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        raise ValueError(f"CRF: reduction={reduction!r}; expected 'sum', 'mean' or 'none'")

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """Viterbi: the highest-scoring tag sequence of each sentence (its own length)."""
        self._check(emissions, mask)
        mask = mask.bool()
        B, T, K = emissions.shape
        v = self.start + emissions[:, 0]  # (B, K)
        keep = torch.arange(K, device=emissions.device).expand(B, K)
        back = []  # back[t-1][b, j] = best previous tag for tag j at step t
        for t in range(1, T):
            best, arg = (v.unsqueeze(2) + self.transitions).max(dim=1)  # (B, K) each
            m = mask[:, t, None]
            v = torch.where(m, best + emissions[:, t], v)
            back.append(torch.where(m, arg, keep))  # padded steps point to the same tag
        y = (v + self.end).argmax(1)  # (B,) the tag at each sentence's last real step
        path = [y]
        for ptr in reversed(back):
            y = ptr.gather(1, y.unsqueeze(1)).squeeze(1)
            path.append(y)
        tags = torch.stack(path[::-1], dim=1).tolist()  # (B, T)
        lengths = mask.sum(1).tolist()
        return [row[:n] for row, n in zip(tags, lengths)]
