"""Bootstrap statistics for accuracy by position.

The data of one configuration is a matrix `X: (questions, positions)` of 0/1
scores (NaN where missing). The same question is shown at every position, so
the resampling unit is the question: one bootstrap resample draws questions
with replacement and keeps their whole rows (a cluster bootstrap). All
configurations use the same draws, so differences between them are paired.
Intervals of means and differences are bootstrap percentile intervals; the interval of one
position's accuracy (a proportion of 0/1 scores) is the Wilson score interval, which, unlike a
percentile interval, does not shrink to zero width at 0% or 100%.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

LEVEL = 0.95


def bootstrap_indices(n: int, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """Question indices of each resample: (n_resamples, n)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _nanmean(x: np.ndarray, axis: int | tuple[int, ...] | None) -> np.ndarray:
    with warnings.catch_warnings():  # an all-NaN slice is a missing cell, not an error
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _ci(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of `boot`."""
    a = (1 - level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(boot, [a, 100 - a], axis=0)
    return lo, hi


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion ``k / n`` (scipy's ``binomtest``); (None, None) for n = 0."""
    from scipy.stats import binomtest

    if n == 0:
        return None, None
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _position_cis(X: np.ndarray, boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-position intervals: Wilson for 0/1 scores, else the bootstrap's percentiles."""
    if not np.all(np.isin(X[~np.isnan(X)], (0.0, 1.0))):
        return _ci(boot, level)
    k, n = np.nansum(X, 0), (~np.isnan(X)).sum(0)
    bounds = [wilson(a, b, level) for a, b in zip(k, n)]
    return (np.array([np.nan if lo is None else lo for lo, _ in bounds]),
            np.array([np.nan if hi is None else hi for _, hi in bounds]))


def _num(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def _worst(means: np.ndarray) -> np.ndarray:
    """Lowest accuracy over positions (last axis), ignoring missing positions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(means, axis=-1)


def summarize(X: np.ndarray, idx: np.ndarray, level: float = LEVEL) -> dict[str, Any]:
    """Accuracy per position, mean over positions and worst position, with CIs.

    Args:
        X: Scores, (questions, positions), 0/1 or NaN.
        idx: Resampled question indices, (resamples, questions).

    Returns:
        {"positions": [{"accuracy", "ci", "n"} per position], "mean": {...},
        "worst": {"accuracy", "ci", "position_index"}, "spread": best - worst}.
        The worst position's CI is that position's own interval (Wilson for 0/1 scores); the
        mean's is the cluster bootstrap's.
    """
    est = _nanmean(X, 0)  # (P,)
    n = (~np.isnan(X)).sum(0)  # (P,)
    boot = _nanmean(X[idx], 1)  # (B, P)
    lo, hi = _position_cis(X, boot, level)
    mean_lo, mean_hi = _ci(_nanmean(boot, 1), level)
    w = int(np.nanargmin(est)) if not np.all(np.isnan(est)) else 0
    return {
        "positions": [
            {"accuracy": _num(e), "ci": [_num(a), _num(b)], "n": int(k)}
            for e, a, b, k in zip(est, lo, hi, n)
        ],
        "mean": {"accuracy": _num(_nanmean(est, None)), "ci": [_num(mean_lo), _num(mean_hi)]},
        "worst": {"accuracy": _num(est[w]), "ci": [_num(lo[w]), _num(hi[w])], "position_index": w},
        "spread": _num(np.nanmax(est) - np.nanmin(est)) if not np.all(np.isnan(est)) else None,
    }


def compare(X: np.ndarray, Y: np.ndarray, idx: np.ndarray, level: float = LEVEL) -> dict[str, Any]:
    """X minus Y, paired on the same questions and positions, with CIs.

    Returns:
        {"positions": [{"diff", "ci", "wins", "losses"}], "mean": {"diff", "ci",
        "wins", "losses"}, "worst": {"diff", "ci"}}: wins counts samples X got
        right and Y wrong, losses the reverse. "worst" compares the worst-position
        accuracies (possibly at different positions).
    """
    D = X - Y  # (Q, P); NaN where either is missing
    est = _nanmean(D, 0)  # (P,)
    boot = _nanmean(D[idx], 1)  # (B, P)
    lo, hi = _ci(boot, level)
    mean_lo, mean_hi = _ci(_nanmean(boot, 1), level)
    wins, losses = (D == 1).sum(0), (D == -1).sum(0)
    worst_boot = _worst(_nanmean(X[idx], 1)) - _worst(_nanmean(Y[idx], 1))  # (B,)
    w_lo, w_hi = _ci(worst_boot, level)
    worst_est = _worst(_nanmean(X, 0)) - _worst(_nanmean(Y, 0))
    return {
        "positions": [
            {"diff": _num(e), "ci": [_num(a), _num(b)], "wins": int(u), "losses": int(v)}
            for e, a, b, u, v in zip(est, lo, hi, wins, losses)
        ],
        "mean": {
            "diff": _num(_nanmean(est, None)), "ci": [_num(mean_lo), _num(mean_hi)],
            "wins": int(wins.sum()), "losses": int(losses.sum()),
        },
        "worst": {"diff": _num(worst_est), "ci": [_num(w_lo), _num(w_hi)]},
    }


def consistency(X: np.ndarray) -> dict[str, int]:
    """How many fully measured questions are right at every, some, or no position.

    A question right at some positions and wrong at others is a positional
    failure; one wrong everywhere is not (see DESIGN.md on "Looking Is Not Picking").
    """
    full = X[~np.isnan(X).any(1)]
    right = full.sum(1)
    return {
        "always": int((right == full.shape[1]).sum()),
        "sometimes": int(((right > 0) & (right < full.shape[1])).sum()),
        "never": int((right == 0).sum()),
    }
