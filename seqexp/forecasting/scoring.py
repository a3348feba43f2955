"""Rolling-origin evaluation of forecasts: where each forecast starts, and its MAE and MASE.

Pure numpy, so that a report can score forecasts without importing torch or statsmodels. An origin ``o``
is the index of the first forecast point: the forecaster sees ``series[:o]`` and predicts
``series[o : o + horizon]``.
"""

import numpy as np

from seqexp.errors import ConfigError


def rolling_origins(n_train: int, n_total: int, horizon: int, stride: int) -> list[int]:
    """The origins ``n_train, n_train + stride, ...`` whose whole horizon lies inside the series."""
    if horizon < 1:
        raise ConfigError(f"data.horizon={horizon} is invalid: it must be at least 1")
    if stride < 1:
        raise ConfigError(f"data.stride={stride} is invalid: it must be at least 1")
    holdout = n_total - n_train
    if holdout < horizon:
        raise ConfigError(
            f"data.horizon={horizon} is longer than the holdout of {holdout} points after the training "
            f"split: it must be at most {holdout}"
        )
    return list(range(n_train, n_total - horizon + 1, stride))


def seasonal_naive_scale(train: np.ndarray, season: int) -> np.ndarray:
    """Per column of ``train`` (N, C), the in-sample MAE of the seasonal-naive forecast,
    ``mean |y_t - y_{t-season}|`` (``season=1``: the naive forecast): the denominator of MASE."""
    if season < 1:
        raise ConfigError(f"data.season={season} is invalid: it must be at least 1")
    if len(train) <= season:
        raise ConfigError(
            f"data.season={season} is invalid for a training split of {len(train)} points: the "
            f"seasonal-naive scale needs more than one season, so it must be at most {len(train) - 1}"
        )
    scale = np.abs(train[season:] - train[:-season]).mean(axis=0)
    flat = np.flatnonzero(scale == 0)
    if flat.size:
        raise ConfigError(
            f"column {flat[0]} of the training split repeats itself exactly every data.season={season} "
            "steps (constant, or purely periodic): its seasonal-naive MAE is 0, so MASE is undefined for it"
        )
    return scale


def forecast_scores(
    forecasts: np.ndarray, series: np.ndarray, origins: list[int], scale: np.ndarray
) -> dict[str, float]:
    """``mae``: the mean absolute error of ``forecasts`` (O, H, C) against ``series`` (N, C) over every
    origin, step and column, in the series' units; ``mase``: the mean over columns of each column's MAE
    divided by its ``scale`` (seasonal_naive_scale), so that every column counts alike."""
    n_origins, horizon, _ = forecasts.shape
    if n_origins != len(origins):
        raise ValueError(f"{n_origins} forecasts for {len(origins)} origins")
    actual = np.stack([series[origin : origin + horizon] for origin in origins])
    if actual.shape != forecasts.shape:
        raise ValueError(
            f"forecasts of shape {forecasts.shape} against actual values of shape {actual.shape}"
        )
    column_mae = np.abs(forecasts - actual).mean(axis=(0, 1))
    return {"mae": float(column_mae.mean()), "mase": float((column_mae / scale).mean())}
