"""TensorBoard's CUSTOM SCALARS tab laid out so that it opens on what matters: train and val loss in
one chart, then val/bpc and val/ppl (text) or val/mse (a series), then the gradient norm."""

from typing import TYPE_CHECKING, cast

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from seqexp.trackers.tensorboard import TensorBoardTracker

if TYPE_CHECKING:
    # The module every run trains. Lightning passes it as a LightningModule, whose attributes it does not
    # declare (nn.Module types them all as Tensor | Module): the hooks cast it.
    from seqexp.module import SequenceLightningModule


def layout(tokens: bool) -> dict[str, dict[str, list[str | list[str]]]]:
    """The custom-scalars layout for text (``tokens``) or float data."""
    charts: dict[str, list[str | list[str]]] = {
        "loss (train, val)": ["Multiline", ["train/loss", "val/loss"]]
    }
    if tokens:
        charts["val/bpc"] = ["Multiline", ["val/bpc"]]
        charts["val/ppl"] = ["Multiline", ["val/ppl"]]
    else:
        charts["val/mse"] = ["Multiline", ["val/mse"]]
    charts["train/grad_norm"] = ["Multiline", ["train/grad_norm"]]
    return {"seqexp": charts}


class CustomScalarsLayout(pl.Callback):
    """Writes the layout once, at the start of fit, into the run's TensorBoard events."""

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardTracker):
                logger.experiment.add_custom_scalars(
                    layout(cast("SequenceLightningModule", pl_module).spec.tokens)
                )
