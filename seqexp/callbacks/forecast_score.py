"""A series scored as forecasters score one: at each validation, the model's forecasts from rolling
origins across the held-out rows (``data.horizon`` steps in closed loop, an origin every ``data.stride``
rows) as ``val/forecast_mae`` (in the data's units) and ``val/mase``, beside the classical baselines on
the same origins (seqexp/forecasting/baselines.py, computed once per series and split, and cached).

The baselines' scores go to ``<run>/baselines.json``, where scripts/report.py finds them; the figure
``val/forecast`` shows the truth, the model's forecast and the baselines' from the first origin.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pytorch_lightning as pl
from matplotlib.figure import Figure
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from seqexp.data.files import write_atomically
from seqexp.errors import ConfigError
from seqexp.forecasting.baselines import cached_baseline_forecasts
from seqexp.forecasting.model_forecasts import model_forecasts
from seqexp.forecasting.scoring import forecast_scores, seasonal_naive_scale
from seqexp.run_layout import BASELINES_FILE
from seqexp.trackers.run_log import run_log, validation_log_step

if TYPE_CHECKING:
    from seqexp.data.series import SeriesDataModule
    from seqexp.module import SequenceLightningModule


class ForecastScore(pl.Callback):
    """Scores every validation; draws the figure at the first validation and every ``every``-th after it,
    with ``context`` rows of history before the origin."""

    key = "callbacks.forecast_score."

    def __init__(self, cache_dir: str, context: int, every: int) -> None:
        for name, value in (("context", context), ("every", every)):
            if value < 1:
                raise ConfigError(f"{self.key}{name}={value} is invalid: it must be an integer >= 1")
        self.cache_dir, self.context, self.every = Path(cache_dir).expanduser(), context, every
        self.validations = 0
        # Set when fitting starts: the MASE scale per target column, the baselines' forecasts and scores.
        self.scale = np.ones(1)
        self.baselines: dict[str, np.ndarray] = {}
        self.baseline_scores: dict[str, dict[str, float]] = {}

    def _datamodule(self, trainer: pl.Trainer) -> "SeriesDataModule | None":
        # Lightning's DataConnector sets trainer.datamodule, which Trainer does not declare.
        datamodule = getattr(trainer, "datamodule", None)
        if getattr(datamodule, "forecasting", None) is None:
            return None
        return cast("SeriesDataModule", datamodule)

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = self._datamodule(trainer)
        if datamodule is None:
            return
        if not datamodule.forecasts_in_closed_loop:
            rank_zero_info(
                "no forecasts are scored: a closed-loop forecast feeds the predictions back as inputs, and "
                "data.target names columns that are not inputs"
            )
            return
        setup, origins = datamodule.forecasting, datamodule.origins()
        series = datamodule.table.values[:, list(datamodule.target_columns)]
        self.scale = seasonal_naive_scale(series[: datamodule.n_train], setup.season)
        self.baselines = cached_baseline_forecasts(
            self.cache_dir,
            series=series,
            n_train=datamodule.n_train,
            origins=origins,
            horizon=setup.horizon,
            season=setup.season,
            sarima_order=setup.sarima_order,
            sarima_seasonal_order=setup.sarima_seasonal_order,
            methods=setup.baselines,
        )
        self.baseline_scores = {
            name: forecast_scores(forecast, series, origins, self.scale)
            for name, forecast in self.baselines.items()
        }
        run_dir = run_log(trainer).run_dir
        if run_dir is not None:
            record = {
                "data": datamodule.table.source,
                "columns": [datamodule.table.names[i] for i in datamodule.target_columns],
                "origins": len(origins),
                "horizon": setup.horizon,
                "stride": setup.stride,
                "season": setup.season,
                "scores": self.baseline_scores,
            }
            text = json.dumps(record, indent=2) + "\n"
            write_atomically(run_dir / BASELINES_FILE, lambda stream: stream.write(text.encode()))

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = self._datamodule(trainer)
        if trainer.sanity_checking or datamodule is None or not datamodule.forecasts_in_closed_loop:
            return
        module = cast("SequenceLightningModule", pl_module)
        origins, values = datamodule.origins(), datamodule.table.values
        forecasts = model_forecasts(
            module.model, module.spec, values, origins, datamodule.forecasting.horizon
        )
        truth = values[:, list(datamodule.target_columns)]
        scores = forecast_scores(forecasts, truth, origins, self.scale)
        step = validation_log_step(trainer)
        log = run_log(trainer)
        log.scalar("val/forecast_mae", scores["mae"], step)
        log.scalar("val/mase", scores["mase"], step)
        self.validations += 1
        if log.shows_media and (self.validations - 1) % self.every == 0:
            log.figure(
                "val/forecast", self._figure(datamodule, truth, forecasts[0], origins[0], scores, step), step
            )

    def _figure(
        self,
        datamodule: "SeriesDataModule",
        truth: np.ndarray,
        forecast: np.ndarray,
        origin: int,
        scores: dict[str, float],
        step: int,
    ) -> Figure:
        """The first target column around the first origin: history, truth, the model and each baseline."""
        horizon = len(forecast)
        start = max(origin - self.context, 0)
        times = datamodule.time_axis(start, origin + horizon)
        ahead = times[origin - start :]
        figure = Figure(figsize=(11, 4))
        axes = figure.subplots()
        axes.plot(times, truth[start : origin + horizon, 0], "k-", linewidth=1, label="truth")
        axes.axvline(times[origin - start], color="gray", linestyle=":", linewidth=1)
        for name, forecasts in self.baselines.items():
            label = f"{name} (MASE {self.baseline_scores[name]['mase']:.2f})"
            axes.plot(ahead, forecasts[0, :, 0], "--", linewidth=1, alpha=0.8, label=label)
        axes.plot(ahead, forecast[:, 0], "g-", linewidth=2, label=f"model (MASE {scores['mase']:.2f})")
        column = datamodule.table.names[datamodule.target_columns[0]]
        axes.set_title(f"{column}: {horizon}-step forecast from the first held-out origin, step {step}")
        axes.set_xlabel(datamodule.time_label)
        axes.set_ylabel(column)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        if datamodule.table.times is not None:
            figure.autofmt_xdate()  # dates slanted, so that a year's worth of them does not overlap
        figure.subplots_adjust(right=0.72)
        return figure
