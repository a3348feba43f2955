"""The classical forecasts a sequence model must beat, at every rolling origin (scoring.py).

Every method forecasts each column on its own (univariate) from the history ``series[:o]`` before an
origin ``o``, for ``horizon`` steps; arrays in and out are plain numpy, ``(O, H, C)`` per method. ETS and
SARIMA estimate their parameters once, on the training split ``series[:n_train]``, and only update their
state with the later observations, as a model trained once and then run over the holdout would. statsmodels
is imported inside those two, so that importing this module stays cheap.
"""

import contextlib
import hashlib
import importlib.metadata
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seqexp.data.files import write_atomically
from seqexp.errors import one_of

BASELINES = ("naive", "seasonal_naive", "seasonal_naive_drift", "ets", "sarima")

# Part of the cache key: raise it when a method's formula changes, so that no forecast of the old one
# is read back.
FORMULAS_VERSION = 1


def baseline_forecasts(
    series: np.ndarray,
    n_train: int,
    origins: list[int],
    horizon: int,
    season: int,
    sarima_order: tuple[int, int, int],
    sarima_seasonal_order: tuple[int, int, int],
    methods: tuple[str, ...],
) -> dict[str, np.ndarray]:
    """The forecasts of each of ``methods`` (names in BASELINES) for ``series`` (N, C), float64 without
    NaN, at each origin: ``{method: (len(origins), horizon, C)}``. ``origins`` ascend from ``n_train``
    (scoring.rolling_origins); SARIMA is SARIMA(sarima_order)(sarima_seasonal_order)_season."""
    for method in methods:
        one_of("baselines", method, BASELINES)
    if not origins:
        raise ValueError("no origins to forecast from")
    if (
        origins != sorted(origins)
        or origins[0] < max(n_train, season + 1)
        or origins[-1] + horizon > len(series)
    ):
        raise ValueError(
            f"origins {origins[0]}..{origins[-1]} must ascend from n_train={n_train}, after at least "
            f"{season + 1} points (season + 1), with {horizon} steps after each in the {len(series)} points"
        )
    forecasts: dict[str, np.ndarray] = {}
    for method in methods:
        if method == "naive":
            forecasts[method] = naive(series, origins, horizon)
        elif method == "seasonal_naive":
            forecasts[method] = seasonal_naive(series, origins, horizon, season)
        elif method == "seasonal_naive_drift":
            forecasts[method] = seasonal_naive_drift(series, origins, horizon, season)
        elif method == "ets":
            forecasts[method] = ets(series, n_train, origins, horizon, season)
        else:
            forecasts[method] = sarima(
                series, n_train, origins, horizon, season, sarima_order, sarima_seasonal_order
            )
    return forecasts


def naive(series: np.ndarray, origins: list[int], horizon: int) -> np.ndarray:
    """The last observed value, ``y[o-1]``, for every step."""
    return np.stack([np.repeat(series[origin - 1 : origin], horizon, axis=0) for origin in origins])


def _seasons_back(horizon: int, season: int) -> np.ndarray:
    """For steps h = 1..H, ``season * (k + 1)`` with ``k = floor((h - 1) / season)``: how far before the
    forecast point lies the last observed value of the same phase of the season."""
    return season * (np.arange(horizon) // season + 1)


def seasonal_naive(series: np.ndarray, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """The value one season earlier, from the history: ``ŷ[o-1+h] = y[o-1+h - season*(k+1)]`` with
    ``k = floor((h - 1) / season)``, h = 1..H."""
    back = _seasons_back(horizon, season)
    return np.stack([series[origin + np.arange(horizon) - back] for origin in origins])


def seasonal_naive_drift(series: np.ndarray, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """The seasonal-naive forecast plus the trend over the seasons it reaches back:
    ``ŷ[o-1+h] = y[o-1+h - season*(k+1)] + season*(k+1) * (y[o-1] - y[0]) / (o-1)``.

    The slope is Hyndman's drift (the mean step over the whole history, first to last point) and it is
    added once per step back, so that a forecast of the value a season ago gains a season's worth of
    trend. This variant reproduces the issue's co2 table (MAE 1.04 ppm); the alternatives do not: the
    slope times h gives 1.51, and the mean seasonal difference ``mean(y_t - y_{t-season})`` per season
    back gives 1.01."""
    back = _seasons_back(horizon, season)
    with_drift = []
    for origin, forecast in zip(origins, seasonal_naive(series, origins, horizon, season), strict=True):
        slope = (series[origin - 1] - series[0]) / (origin - 1)
        with_drift.append(forecast + back[:, None] * slope)
    return np.stack(with_drift)


@contextlib.contextmanager
def _statsmodels_quiet() -> Iterator[None]:
    """statsmodels warns of non-converged optimizers and of bounds hit by the fits below; a baseline
    is taken as its estimator leaves it, so those warnings are noise here, and only here."""
    from statsmodels.tools.sm_exceptions import ModelWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ModelWarning)  # its own, wherever their stacklevel points
        warnings.filterwarnings("ignore", module=r"statsmodels\.")  # numpy's, raised in its optimizers
        yield


def ets(series: np.ndarray, n_train: int, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """Holt-Winters exponential smoothing with additive trend and additive season (ETS(A,A,A)).

    statsmodels' ``holtwinters.ExponentialSmoothing`` estimates the smoothing parameters and the
    initial level, trend and season on the training split by least squares (initialization_method
    "estimated"). At each origin the same model is rebuilt on ``series[:o]`` with those initial states
    ("known") and fitted with ``optimized=False`` at those smoothing parameters: no parameter is
    re-estimated, the recursions only run over the observations up to the origin. The forecast is the
    textbook one from the final states, ``l_T + h b_T + s_{T+h-season(k+1)}``: statsmodels' own (0.15)
    overwrites the last seasonal state before forecasting, so that the steps h that are multiples of
    the season take the season from a cycle earlier (statsmodels issue 9538).

    This estimator gives the issue's co2 numbers (1.42 ppm, MASE 1.12); ``ets.ETSModel`` by maximum
    likelihood stops at its evaluation limit with MASE 1.1251, and takes about three times as long.
    A ``season`` of 1 means no season: Holt's linear trend, ETS(A,A,N).
    """
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    steps = np.arange(1, horizon + 1)
    phase = (steps - 1) % season - season  # the index, in the last season of states, of each step's phase
    forecasts = np.empty((len(origins), horizon, series.shape[1]))
    seasonal = season > 1
    with _statsmodels_quiet():
        for column in range(series.shape[1]):
            shape = {"trend": "add", **({"seasonal": "add", "seasonal_periods": season} if seasonal else {})}
            fitted = ExponentialSmoothing(
                series[:n_train, column], **shape, initialization_method="estimated"
            ).fit()
            params = fitted.params
            for index, origin in enumerate(origins):
                model = ExponentialSmoothing(
                    series[:origin, column],
                    **shape,
                    initialization_method="known",
                    initial_level=params["initial_level"],
                    initial_trend=params["initial_trend"],
                    **({"initial_seasonal": params["initial_seasons"]} if seasonal else {}),
                )
                states = model.fit(
                    smoothing_level=params["smoothing_level"],
                    smoothing_trend=params["smoothing_trend"],
                    **({"smoothing_seasonal": params["smoothing_seasonal"]} if seasonal else {}),
                    optimized=False,
                )
                level, trend = states.level[-1], states.trend[-1]
                forecasts[index, :, column] = (
                    level + steps * trend + (states.season[phase] if seasonal else 0)
                )
    return forecasts


def sarima(
    series: np.ndarray,
    n_train: int,
    origins: list[int],
    horizon: int,
    season: int,
    order: tuple[int, int, int],
    seasonal_order: tuple[int, int, int],
) -> np.ndarray:
    """statsmodels' SARIMAX(order, seasonal_order + (season,)) fitted by maximum likelihood on the
    training split, once. Its results are carried from origin to origin with ``results.extend(new
    observations)``: the Kalman filter continues from the state where the last one ended, with the
    fitted parameters, so each observation of the holdout is filtered once however many origins there
    are (``apply`` to ``series[:o]`` would give the same forecasts, filtering the whole history again).

    BLAS runs on one thread here. A seasonal model carries about two seasons of states (107 for
    SARIMA(1,1,1)(0,1,1)52), and each step of the filter multiplies matrices of that size: too small to
    share across threads, so OpenBLAS's threads only wait for each other, and on cores that other work
    keeps busy they wait for the scheduler too. On 2 shared cores one likelihood of co2 took 0.3 s on
    one thread and 0.6 to 33 s on two, and the whole fit 47 s on one, 60 to 912 s on two.
    A ``season`` of 1 means no season: SARIMA(order) alone.
    """
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    from threadpoolctl import threadpool_limits

    forecasts = np.empty((len(origins), horizon, series.shape[1]))
    with _statsmodels_quiet(), threadpool_limits(limits=1, user_api="blas"):
        for column in range(series.shape[1]):
            seasons = (*seasonal_order, season) if season > 1 else (0, 0, 0, 0)
            model = SARIMAX(series[:n_train, column], order=order, seasonal_order=seasons)
            results = model.fit(disp=False)
            seen = n_train
            for index, origin in enumerate(origins):
                if origin > seen:
                    results = results.extend(series[seen:origin, column])
                    seen = origin
                forecasts[index, :, column] = results.forecast(horizon)
    return forecasts


def cache_key(
    series: np.ndarray,
    n_train: int,
    origins: list[int],
    horizon: int,
    season: int,
    sarima_order: tuple[int, int, int],
    sarima_seasonal_order: tuple[int, int, int],
) -> str:
    """sha256 of the series (its bytes, shape and dtype), every argument that shapes a forecast, the
    statsmodels release (its estimators may move between releases) and FORMULAS_VERSION."""
    arguments = {
        "shape": list(series.shape),
        "dtype": str(series.dtype),
        "n_train": int(n_train),
        "origins": [int(origin) for origin in origins],
        "horizon": int(horizon),
        "season": int(season),
        "sarima_order": [int(value) for value in sarima_order],
        "sarima_seasonal_order": [int(value) for value in sarima_seasonal_order],
        "statsmodels": importlib.metadata.version("statsmodels"),
        "formulas": FORMULAS_VERSION,
    }
    digest = hashlib.sha256(series.tobytes())  # C order whatever the layout in memory
    digest.update(json.dumps(arguments, sort_keys=True).encode())
    return digest.hexdigest()


def cached_baseline_forecasts(
    cache_dir: Path,
    series: np.ndarray,
    n_train: int,
    origins: list[int],
    horizon: int,
    season: int,
    sarima_order: tuple[int, int, int],
    sarima_seasonal_order: tuple[int, int, int],
    methods: tuple[str, ...],
) -> dict[str, np.ndarray]:
    """baseline_forecasts, computed once per dataset and split: kept in ``<cache_dir>/<cache_key>.npz``,
    one array per method. The key leaves out ``methods``, so that a later call asking for one more
    method computes only that one and adds it to the same file (written atomically: a reader never
    sees half a file)."""
    key = cache_key(series, n_train, origins, horizon, season, sarima_order, sarima_seasonal_order)
    path = cache_dir / f"{key}.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            cached = {name: stored[name] for name in stored.files}
    missing = tuple(method for method in methods if method not in cached)
    if missing:
        cached |= baseline_forecasts(
            series, n_train, origins, horizon, season, sarima_order, sarima_seasonal_order, missing
        )
        write_atomically(path, lambda file: np.savez(file, allow_pickle=False, **cached))
    return {method: cached[method] for method in methods}
