"""At each validation, the sine fit as the lecture notes draw it: input points, target, prediction.

Any float series works (the sine is the one we ship): the time axis uses the datamodule's ``time_step``.
"""

import pytorch_lightning as pl
from matplotlib.figure import Figure
from pytorch_lightning.utilities import rank_zero_only

from seqexp.callbacks.tensorboard import tensorboard_writer
from seqexp.errors import ConfigError


class SineFitPlot(pl.Callback):
    """Logs ``val/sine_fit``: the model run over the first ``n_points`` of the validation curve."""

    def __init__(self, n_points: int = 120) -> None:
        if n_points < 2:
            raise ConfigError(
                f"callbacks.sine_fit.n_points={n_points} is invalid: it must be an integer >= 2"
            )
        self.n_points = n_points

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = trainer.datamodule
        writer = tensorboard_writer(trainer)
        if trainer.sanity_checking or writer is None or datamodule.spec.tokens:
            return
        series = datamodule.splits["val"][: self.n_points + 1].squeeze(-1)
        x, target = series[:-1], series[1:]
        prediction, _ = pl_module.predict_sequence(x.view(1, -1, 1))
        t = [datamodule.time_step * i for i in range(len(series))]

        # A bare Figure (no pyplot) needs no display and no global figure registry.
        figure = Figure(figsize=(8, 4))
        axes = figure.subplots()
        axes.plot(t[:-1], x.tolist(), "r.", label="input, x")
        axes.plot(t[1:], target.tolist(), "b-", alpha=0.4, label="target, y")
        axes.plot(t[1:], prediction.flatten().tolist(), "b.", label="prediction")
        axes.set_xlabel("t from the start of the validation curve")
        axes.set_title(f"sine fit at step {trainer.global_step}")
        # Beside the plot rather than loc="best": no overlap with the curve, and "best" searches for a
        # spot at every draw (a third of the figure's cost).
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        figure.subplots_adjust(right=0.8)
        writer.add_figure("val/sine_fit", figure, global_step=trainer.global_step, close=False)
