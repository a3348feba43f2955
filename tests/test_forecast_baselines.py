"""The classical forecasting baselines (seqexp/forecasting/baselines.py) and rolling-origin scoring
(scoring.py): each method against a hand computation or an independent statsmodels path, the cache,
the user's mistakes, and the issue's co2 reference table."""

import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from seqexp.errors import ConfigError
from seqexp.forecasting import baselines
from seqexp.forecasting.baselines import BASELINES, baseline_forecasts, cache_key, cached_baseline_forecasts
from seqexp.forecasting.scoring import forecast_scores, rolling_origins, seasonal_naive_scale
from tests.helpers import REPO

# Two columns forecast independently: digits of pi (no structure) and 1..12 (a straight line).
TINY = np.column_stack([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], np.arange(1, 13)]).astype(np.float64)
SARIMA_ORDERS = {"sarima_order": (1, 0, 0), "sarima_seasonal_order": (0, 1, 1)}


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """The statsmodels fits that these tests make themselves on one BLAS thread, as the SARIMA baseline
    makes its own: two threads on cores that another process keeps busy make them seconds slower."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def forecast_tiny(methods: tuple[str, ...], origins: list[int], horizon: int) -> dict[str, np.ndarray]:
    return baseline_forecasts(TINY, 6, origins, horizon, 4, (1, 0, 0), (0, 1, 1), methods)


def test_rolling_origins_by_hand() -> None:
    assert rolling_origins(n_train=8, n_total=20, horizon=3, stride=4) == [8, 12, 16]  # 20 + 3 > 20
    assert rolling_origins(n_train=8, n_total=11, horizon=3, stride=5) == [8]  # the holdout is one horizon
    assert rolling_origins(n_train=8, n_total=12, horizon=3, stride=1) == [8, 9]


def test_naive_forecasts_by_hand() -> None:
    """Origin 6, season 4: the history is TINY[:6]; steps 5 and 6 reach two seasons back."""
    forecasts = forecast_tiny(("naive", "seasonal_naive", "seasonal_naive_drift"), [6], 6)
    assert forecasts["naive"][0].tolist() == [[9, 6]] * 6
    seasonal = [[4, 3], [1, 4], [5, 5], [9, 6], [4, 3], [1, 4]]
    assert forecasts["seasonal_naive"][0].tolist() == seasonal
    # Slopes (9 - 3) / 5 = 1.2 and (6 - 1) / 5 = 1, times 4 steps back, then 8 for steps 5 and 6.
    drift = [[8.8, 7], [5.8, 8], [9.8, 9], [13.8, 10], [13.6, 11], [10.6, 12]]
    np.testing.assert_allclose(forecasts["seasonal_naive_drift"][0], drift, rtol=1e-12)
    # A straight line is what the drift forecasts exactly.
    np.testing.assert_allclose(forecasts["seasonal_naive_drift"][0, :, 1], TINY[6:, 1], rtol=1e-12)


def test_naive_forecasts_at_later_origins_by_hand() -> None:
    forecasts = forecast_tiny(("naive", "seasonal_naive"), [6, 8, 10], 2)
    assert forecasts["naive"][:, :, 0].tolist() == [[9, 9], [6, 6], [3, 3]]
    assert forecasts["seasonal_naive"][:, :, 0].tolist() == [[4, 1], [5, 9], [2, 6]]
    assert forecasts["seasonal_naive"][:, :, 1].tolist() == [[3, 4], [5, 6], [7, 8]]


def test_scores_by_hand() -> None:
    """The naive forecast of TINY from origin 6: absolute errors 7 3 4 6 4 1 (sum 25) and 1..6 (21);
    seasonal-naive scales (|5-3| + |9-1|) / 2 = 5 and (4 + 4) / 2 = 4."""
    scale = seasonal_naive_scale(TINY[:6], 4)
    assert scale.tolist() == [5, 4]
    assert seasonal_naive_scale(TINY[:6], 1).tolist() == [16 / 5, 1]  # |1-3| + 3 + 3 + 4 + 4 over 5
    scores = forecast_scores(forecast_tiny(("naive",), [6], 6)["naive"], TINY, [6], scale)
    assert scores["mae"] == pytest.approx(46 / 12)
    assert scores["mase"] == pytest.approx((25 / 6 / 5 + 21 / 6 / 4) / 2)


def holt_winters_by_hand(history: np.ndarray, params: dict, season: int, horizon: int) -> np.ndarray:
    """Additive Holt-Winters written out from the textbook recursions, from the given initial states:
    ``l_t = a (y_t - s_{t-m}) + (1-a)(l_{t-1} + b_{t-1})``, ``b_t = b* (l_t - l_{t-1}) + (1-b*) b_{t-1}``,
    ``s_t = g (y_t - l_{t-1} - b_{t-1}) + (1-g) s_{t-m}``; ``ŷ_{T+h} = l_T + h b_T + s_{T+h-m(k+1)}``."""
    alpha, beta, gamma = params["smoothing_level"], params["smoothing_trend"], params["smoothing_seasonal"]
    level, trend, seasons = params["initial_level"], params["initial_trend"], list(params["initial_seasons"])
    for value in history:
        last_level, last_trend, last_season = level, trend, seasons[-season]
        level = alpha * (value - last_season) + (1 - alpha) * (last_level + last_trend)
        trend = beta * (level - last_level) + (1 - beta) * last_trend
        seasons.append(gamma * (value - last_level - last_trend) + (1 - gamma) * last_season)
    return np.array([level + h * trend + seasons[-season + (h - 1) % season] for h in range(1, horizon + 1)])


def test_ets_updates_the_training_fit_with_later_observations() -> None:
    """The parameters are estimated once, on the training split; at later origins only the states
    move. The series is chosen so that every smoothing parameter is above 0 (each update matters), and
    the horizon covers a whole season (statsmodels' own forecast takes the last phase of the season
    from a cycle too early)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    t = np.arange(40.0)
    series = (
        5 + 0.05 * t**2 - 0.002 * t**3 + np.tile([1.0, -2.0, 0.5, 0.5], 10) * (1 + t / 20) + np.sin(0.7 * t)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        training = ExponentialSmoothing(
            series[:32], trend="add", seasonal="add", seasonal_periods=4, initialization_method="estimated"
        ).fit()
    params = training.params
    assert min(params["smoothing_level"], params["smoothing_trend"], params["smoothing_seasonal"]) > 0.1
    origins = [32, 34, 36]
    forecasts = baseline_forecasts(series[:, None], 32, origins, 4, 4, (1, 0, 0), (0, 1, 1), ("ets",))["ets"]
    for forecast, origin in zip(forecasts, origins, strict=True):
        np.testing.assert_allclose(
            forecast[:, 0], holt_winters_by_hand(series[:origin], params, 4, 4), rtol=1e-10
        )


def test_ets_forecasts_a_linear_trend_and_an_exact_season() -> None:
    t = np.arange(48.0)
    series = np.column_stack([2 + 0.5 * t + np.tile([1.0, -2.0, 0.5, 0.5], 12), 10 - 0.25 * t])
    origins = rolling_origins(n_train=32, n_total=48, horizon=8, stride=4)
    forecasts = baseline_forecasts(series, 32, origins, 8, 4, (1, 0, 0), (0, 1, 1), ("ets",))["ets"]
    actual = np.stack([series[origin : origin + 8] for origin in origins])
    np.testing.assert_allclose(forecasts, actual, atol=1e-3)


def test_a_season_of_one_is_no_season_for_ets_and_sarima() -> None:
    """data.season's default, 1, for a series with no season: Holt's linear trend, and SARIMA without its
    seasonal part (statsmodels refuses a season of 1 for either)."""
    t = np.arange(40.0)
    series = (3 + 0.5 * t)[:, None]
    origins = rolling_origins(n_train=30, n_total=40, horizon=5, stride=5)
    forecasts = baseline_forecasts(series, 30, origins, 5, 1, (0, 1, 0), (0, 1, 1), ("ets", "sarima"))
    actual = np.stack([series[origin : origin + 5] for origin in origins])
    np.testing.assert_allclose(forecasts["ets"], actual, atol=1e-3)  # a line, continued
    # A random walk (0, 1, 0) forecasts the last value, as the naive method does.
    np.testing.assert_allclose(
        forecasts["sarima"], np.stack([np.repeat(series[o - 1 : o], 5, 0) for o in origins])
    )


def test_sarima_equals_statsmodels_filtering_each_history_with_the_training_fit() -> None:
    """The independent path: the model fitted on the training split, its parameters applied to the
    whole history before each origin (a filter from the first point, where the baseline carries the
    state from origin to origin)."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    rng = np.random.default_rng(0)
    t = np.arange(60.0)
    series = np.column_stack(
        [10 + 0.3 * t + np.tile([1.0, -2.0, 0.5, 0.5], 15) + rng.normal(0, 0.3, 60), rng.normal(0, 1, 60)]
    )
    origins = rolling_origins(n_train=40, n_total=60, horizon=8, stride=5)
    assert origins == [40, 45, 50]
    forecasts = baseline_forecasts(series, 40, origins, 8, 4, (1, 0, 0), (0, 1, 1), ("sarima",))["sarima"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for column in range(2):
            fitted = SARIMAX(series[:40, column], order=(1, 0, 0), seasonal_order=(0, 1, 1, 4)).fit(
                disp=False
            )
            for forecast, origin in zip(forecasts, origins, strict=True):
                model = SARIMAX(series[:origin, column], order=(1, 0, 0), seasonal_order=(0, 1, 1, 4))
                expected = model.filter(fitted.params).forecast(8)
                np.testing.assert_allclose(forecast[:, column], expected, rtol=1e-8)


def test_statsmodels_warnings_are_silenced_inside_the_baselines_only() -> None:
    """What statsmodels warns about on this fit (non-invertible starting ARMA parameters) stays inside
    the baseline, and the caller's warning filters are as they were."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    noise = np.random.default_rng(2).normal(0, 1, (48, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        baseline_forecasts(noise, 40, [40], 8, 4, (1, 0, 1), (0, 0, 0), ("sarima", "ets"))
        assert caught == []
        assert warnings.filters == filters
        SARIMAX(noise[:40, 0], order=(1, 0, 1), seasonal_order=(0, 0, 0, 4)).fit(disp=False)
    assert caught, "statsmodels no longer warns on this fit: choose one that does"


def test_importing_the_baselines_imports_neither_statsmodels_nor_torch() -> None:
    check = (
        "import sys, seqexp.forecasting.baselines; print(sorted({'statsmodels', 'torch'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_cache_computes_each_method_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arguments = {"n_train": 8, "origins": [8, 10], "horizon": 2, "season": 4, **SARIMA_ORDERS}
    first = cached_baseline_forecasts(tmp_path, TINY, methods=("naive", "ets"), **arguments)
    assert [path.name for path in tmp_path.iterdir()] == [f"{cache_key(TINY, **arguments)}.npz"]

    computed: list[tuple[str, ...]] = []
    compute = baselines.baseline_forecasts

    def spy(*args: Any) -> dict[str, np.ndarray]:
        computed.append(args[-1])  # the methods asked for
        return compute(*args)

    monkeypatch.setattr(baselines, "baseline_forecasts", spy)
    again = cached_baseline_forecasts(tmp_path, TINY, methods=("ets", "naive"), **arguments)
    assert computed == []
    for method in ("naive", "ets"):
        np.testing.assert_array_equal(again[method], first[method])
    more = cached_baseline_forecasts(tmp_path, TINY, methods=("naive", "seasonal_naive"), **arguments)
    assert computed == [("seasonal_naive",)]
    np.testing.assert_array_equal(
        more["seasonal_naive"], compute(TINY, methods=("seasonal_naive",), **arguments)["seasonal_naive"]
    )
    with np.load(tmp_path / f"{cache_key(TINY, **arguments)}.npz", allow_pickle=False) as stored:
        assert sorted(stored.files) == ["ets", "naive", "seasonal_naive"]
    assert len(list(tmp_path.iterdir())) == 1  # no temporary file left behind


def test_cache_key_changes_with_the_series_and_every_argument() -> None:
    arguments = {"n_train": 6, "origins": [6, 8], "horizon": 4, "season": 4, **SARIMA_ORDERS}
    key = cache_key(TINY, **arguments)
    assert key == cache_key(TINY.copy(), **arguments)
    changed = TINY.copy()
    changed[3, 1] += 1e-9
    assert cache_key(changed, **arguments) != key
    assert cache_key(TINY[:, :1], **arguments) != cache_key(TINY[:, 1:], **arguments)
    assert cache_key(TINY.reshape(6, 4), **arguments) != cache_key(TINY, **arguments)  # same bytes
    for name, value in [
        ("n_train", 7),
        ("origins", [6]),
        ("horizon", 3),
        ("season", 2),
        ("sarima_order", (0, 1, 1)),
        ("sarima_seasonal_order", (0, 1, 0)),
    ]:
        assert cache_key(TINY, **{**arguments, name: value}) != key, name


def test_cache_key_changes_with_the_statsmodels_release(monkeypatch: pytest.MonkeyPatch) -> None:
    arguments = {"n_train": 6, "origins": [6, 8], "horizon": 4, "season": 4, **SARIMA_ORDERS}
    key = cache_key(TINY, **arguments)
    monkeypatch.setattr(baselines.importlib.metadata, "version", lambda package: "0.0.1")
    assert cache_key(TINY, **arguments) != key


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: rolling_origins(10, 20, 0, 1), ["data.horizon=0", "at least 1"]),
        (lambda: rolling_origins(10, 20, 2, 0), ["data.stride=0", "at least 1"]),
        (lambda: rolling_origins(10, 20, 11, 1), ["data.horizon=11", "holdout of 10 points", "at most 10"]),
        (lambda: seasonal_naive_scale(TINY[:4], 4), ["data.season=4", "4 points", "at most 3"]),
        (lambda: seasonal_naive_scale(TINY[:8], 0), ["data.season=0", "at least 1"]),
        (
            lambda: seasonal_naive_scale(np.column_stack([TINY[:, 0], np.full(12, 2.0)]), 1),
            ["column 1", "MASE"],
        ),
        (lambda: seasonal_naive_scale(np.tile([[1.0], [2.0]], (6, 1)), 2), ["column 0", "data.season=2"]),
        (lambda: forecast_tiny(("naive", "theta"), [6], 2), ["'theta'", ", ".join(BASELINES)]),
    ],
)
def test_user_mistakes_are_one_line_naming_the_value(call: Callable[[], object], words: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message


# The table: weekly Mauna Loa CO2, the last 10 % held out, one 52-week forecast from its start.
CO2_TABLE = {
    "naive": (3.26, 2.58),
    "seasonal_naive": (2.12, 1.67),
    "seasonal_naive_drift": (1.04, 0.82),
    "ets": (1.42, 1.12),
    "sarima": (0.67, 0.53),
}


@pytest.fixture(scope="module")
def co2() -> np.ndarray:
    from statsmodels.datasets import co2

    return co2.load_pandas().data["co2"].interpolate(method="linear").to_numpy()[:, None]


@pytest.mark.parametrize(
    "method",
    [pytest.param(method, marks=pytest.mark.slow) if method == "sarima" else method for method in CO2_TABLE],
)
def test_co2_reference_table(co2: np.ndarray, method: str) -> None:
    # The table holds out 229 points, 2284 - int(2284 * 0.9): holding out int(2284 * 0.1) = 228 gives a
    # naive MAE of 3.62 ppm.
    n_train = int(len(co2) * 0.9)
    origins = [n_train]
    forecasts = baseline_forecasts(co2, n_train, origins, 52, 52, (1, 1, 1), (0, 1, 1), (method,))[method]
    scores = forecast_scores(forecasts, co2, origins, seasonal_naive_scale(co2[:n_train], 52))
    mae, mase = CO2_TABLE[method]
    assert scores["mae"] == pytest.approx(mae, abs=0.005)
    assert scores["mase"] == pytest.approx(mase, abs=0.005)
