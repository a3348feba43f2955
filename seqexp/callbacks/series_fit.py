"""At each validation, the fit of a float series as the lecture notes draw it (input points, target,
prediction), and beside it the closed-loop forecast: the model fed its own predictions.

Any float series works (the sine is the one we ship): the time axis uses the datamodule's ``time_step``.
For next-step series the figure is ``val/forecast`` (one-step fit | forecast) with the scalar
``val/forecast_mse``; a series with its own targets (data=echo) has no forecast to make, and gets the
one-step fit alone as ``val/sine_fit``.
"""

from typing import TYPE_CHECKING, cast

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from seqexp.callbacks.periodic import PeriodicDiagnostic
from seqexp.diagnostics import closed_loop_forecasts
from seqexp.errors import ConfigError
from seqexp.trackers.run_log import RunLog, validation_log_step

if TYPE_CHECKING:
    from seqexp.data.datamodule import StreamDataModule

    # The module every run trains. Lightning passes it as a LightningModule, whose attributes it does not
    # declare (nn.Module types them all as Tensor | Module): the hooks cast it.
    from seqexp.module import SequenceLightningModule


class SeriesFitPlot(PeriodicDiagnostic):
    """The model over the first ``n_points`` of the validation series, and a forecast that warms up on
    its first ``warm_up`` points and then runs closed-loop for ``horizon`` steps (fewer where the split
    ends sooner); at the first validation, every ``every``-th after it (drawing costs more than a small
    model's validation) and for the final model."""

    key = "callbacks.sine_fit."  # its key in conf/callbacks/default.yaml, for messages; users type it

    def __init__(self, n_points: int, warm_up: int, horizon: int, every: int) -> None:
        super().__init__(every)
        for name, value in (("n_points", n_points), ("warm_up", warm_up), ("horizon", horizon)):
            if value < 1:
                raise ConfigError(f"{self.key}{name}={value} is invalid: it must be an integer >= 1")
        self.n_points, self.warm_up, self.horizon = n_points, warm_up, horizon

    def applies(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        return not cast("SequenceLightningModule", pl_module).spec.tokens

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule, log: RunLog) -> None:
        module = cast("SequenceLightningModule", pl_module)
        # Lightning's DataConnector sets trainer.datamodule, which Trainer does not declare.
        datamodule = cast("StreamDataModule", trainer.datamodule)  # type: ignore[attr-defined]
        inputs, targets = datamodule.aligned("val")
        x, target = inputs[: self.n_points], targets[: self.n_points]
        prediction, _ = module.predict_sequence(x.unsqueeze(0))
        step = validation_log_step(trainer)
        next_step = "val" not in datamodule.targets
        # A series scored by forecasters' rules draws its forecasts itself (callbacks/forecast_score.py).
        horizon = 0 if datamodule.forecasting else min(self.horizon, len(inputs) - self.warm_up)
        # A bare Figure (no pyplot) needs no display and no global figure registry.
        figure = Figure(figsize=(14 if next_step and horizon > 0 else 8, 4))
        panels = figure.subplots(1, 2 if next_step and horizon > 0 else 1, squeeze=False)[0]
        # A target belongs as many steps after its input as the dataset says (the next item: one).
        lead = 1 if next_step else datamodule.targets_lead
        times = datamodule.val_times(len(x) + lead)
        fit = panels[0]
        fit.plot(
            times[: len(x)], datamodule.in_data_units(x, "inputs")[:, 0].tolist(), "r.", label="input, x"
        )
        t = times[lead : lead + len(x)]
        fit.plot(
            t, datamodule.in_data_units(target, "targets")[:, 0].tolist(), "b-", alpha=0.4, label="target, y"
        )
        prediction = datamodule.in_data_units(prediction.cpu()[0], "targets")
        fit.plot(t, prediction[:, 0].tolist(), "b.", label="prediction")
        fit.set_title(f"{'one-step ' if next_step else ''}fit at step {step}")
        _finish(fit, datamodule.time_label)
        if not (next_step and horizon > 0):
            if np.issubdtype(np.asarray(times).dtype, np.datetime64):
                figure.autofmt_xdate()  # dates slanted, so that they do not overlap
            figure.subplots_adjust(right=0.8)
            # Named for the first series, for every series: the tag users know from TensorBoard.
            log.figure("val/sine_fit", figure, step)
            return
        series = inputs[: self.warm_up + horizon].to(module.device)
        forecast = closed_loop_forecasts(module.model, series, [self.warm_up], horizon)[0].cpu()
        truth = inputs[self.warm_up : self.warm_up + horizon]
        mse = float(torch.mean((forecast - truth) ** 2))
        log.scalar("val/forecast_mse", mse, step)
        dt = datamodule.time_step
        self._draw_forecast(panels[1], inputs, forecast, dt, step, mse, float(torch.mean(truth**2)))
        _finish(panels[1], datamodule.time_label)
        figure.subplots_adjust(right=0.88, wspace=0.45)
        log.figure("val/forecast", figure, step)

    def _draw_forecast(
        self,
        axes: Axes,
        inputs: torch.Tensor,
        forecast: torch.Tensor,
        dt: float,
        step: int,
        mse: float,
        zero: float,
    ) -> None:
        end = self.warm_up + len(forecast)
        axes.plot([dt * i for i in range(end)], inputs[:end, 0].tolist(), "b-", alpha=0.4, label="truth")
        times = [dt * i for i in range(self.warm_up, end)]
        axes.plot(times, forecast[:, 0].tolist(), "g.", markersize=3, label="forecast")
        axes.axvspan(0, dt * (self.warm_up - 1), color="gray", alpha=0.15, label="warm-up")
        axes.set_title(f"closed-loop forecast: mse {mse:.3g} (predicting 0: {zero:.3g})")


def _finish(axes: Axes, time_label: str) -> None:
    axes.set_xlabel(time_label)
    # Beside the plot rather than loc="best": no overlap with the curve, and "best" searches for a
    # spot at every draw (a third of the figure's cost).
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
