"""Aggregates over games x seeds with stratified bootstrap 95% intervals, and the probability of
improvement (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice").

The resampling is ``scipy.stats.bootstrap`` given one sample per game: it resamples each sample
(the seeds of one game) on its own, which is the bootstrap stratified by game. Percentile
intervals, as Agarwal et al. use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
#: Values are floored here before a geometric mean (as the teacher comparison floors percentages).
GEOMEAN_FLOOR = 0.1

PerGame = Sequence[Sequence[float] | np.ndarray]  # one sequence of per-seed values for each game


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (scipy's trimmed mean, 25% cut each side)."""
    return stats.trim_mean(values, 0.25, axis=axis)


def geometric_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.gmean(np.maximum(values, GEOMEAN_FLOOR), axis=axis)


AGGREGATES: dict[str, Callable[..., np.ndarray]] = {"IQM": iqm, "mean": np.mean, "geometric mean": geometric_mean}


def _pooled(statistic: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A statistic of all games' values together, for bootstrap's one-sample-per-game call."""
    return lambda *per_game, axis=-1: statistic(np.concatenate(per_game, axis=axis), axis=axis)


def _estimate(
    samples: list[np.ndarray],
    statistic: Callable[..., Any],
    seed: int,
    resamples: int = RESAMPLES,
) -> tuple[float, float, float]:
    """(statistic of the samples, low, high): a percentile bootstrap that resamples each sample on
    its own; no interval (NaN) when a sample has one value, as there is nothing to resample."""
    point = float(statistic(*samples))
    if any(len(s) < 2 for s in samples):
        return point, math.nan, math.nan
    result = stats.bootstrap(
        samples,
        statistic,
        n_resamples=resamples,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(seed),
    )
    return point, float(result.confidence_interval.low), float(result.confidence_interval.high)


def interval(per_game: PerGame, statistic: Callable[..., np.ndarray], seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, low, high) of ``statistic`` over all games x seeds, 95% stratified bootstrap.
    A game with one seed leaves nothing to resample: then there is no interval (NaN, NaN)."""
    samples = [np.asarray(v, dtype=float) for v in per_game if len(v)]
    return _estimate(samples, _pooled(statistic), seed)


def probability_of_improvement(x: PerGame, y: PerGame, lower_is_better: bool = False) -> float:
    """P(X > Y): for each game the chance that a run of X scores above a run of Y (ties count
    half: the Mann-Whitney U statistic over all pairs of seeds / pairs), averaged over games."""
    return float(
        _mean_chance([np.asarray(v, dtype=float) for v in x], [np.asarray(v, dtype=float) for v in y], lower_is_better)
    )


def _mean_chance(x: Sequence[np.ndarray], y: Sequence[np.ndarray], lower_is_better: bool, axis: int = -1) -> np.ndarray:
    """P(X > Y) over games, along ``axis`` (any other axes are bootstrap resamples)."""
    per_game = [
        _chance_above(np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1), lower_is_better)
        for a, b in zip(x, y, strict=True)
    ]
    return np.nanmean(np.stack(per_game), axis=0)


def _chance_above(xs: np.ndarray, ys: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """``U / (n m)`` along the last axis (any leading axes are resamples): the share of pairs in
    which x beats y, ties counting half; NaN when either side is empty."""
    if not xs.shape[-1] or not ys.shape[-1]:
        return np.full(np.broadcast_shapes(xs.shape[:-1], ys.shape[:-1]), np.nan)
    if lower_is_better:
        xs, ys = -xs, -ys
    pairs_x, pairs_y = xs[..., :, None], ys[..., None, :]
    return ((pairs_x > pairs_y) + 0.5 * (pairs_x == pairs_y)).mean(axis=(-2, -1))


def improvement_interval(
    x: PerGame, y: PerGame, lower_is_better: bool = False, seed: int = 0
) -> tuple[float, float, float]:
    """(P(X > Y), low, high): the games' seeds of both groups resampled, each on its own."""
    games = len(x)
    samples = [np.asarray(v, dtype=float) for v in (*x, *y)]

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        return _mean_chance(resampled[:games], resampled[games:], lower_is_better, axis)

    return _estimate(samples, statistic, seed, resamples=RESAMPLES // 4)


def ratio_interval(x: PerGame, y: PerGame, seed: int = 0) -> tuple[float, float, float]:
    """(mean of x / mean of y, low, high), both over games x seeds, each game's seeds of each
    group resampled on their own: e.g. the updates one group needs over another's."""
    games = len(x)
    samples = [np.asarray(v, dtype=float) for v in (*x, *y)]

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        mean_x = np.concatenate(resampled[:games], axis=axis).mean(axis=axis)
        return mean_x / np.concatenate(resampled[games:], axis=axis).mean(axis=axis)

    return _estimate(samples, statistic, seed)


def mean_band(values: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) at each point of a curve and its 95% bootstrap band."""
    mean = values.mean(axis=0)
    if values.shape[0] < 2:
        return mean, mean, mean
    result = stats.bootstrap(
        (values,),
        np.mean,
        axis=0,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(seed),
    )
    return mean, result.confidence_interval.low, result.confidence_interval.high
