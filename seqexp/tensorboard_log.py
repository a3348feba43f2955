"""The run's TensorBoard log, for whatever writes to it besides Lightning (the figure, sample and layout
callbacks, a resume's restart marker): its SummaryWriter, and the step a validation is logged at."""

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter


def tensorboard_writer(trainer: pl.Trainer) -> SummaryWriter | None:
    """The SummaryWriter of the run's TensorBoard logger, or None when there is none."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def validation_log_step(trainer: pl.Trainer) -> int:
    """The step Lightning logs a validation's scalars at (during fit: the batches stepped so far)."""
    from pytorch_lightning.trainer.states import TrainerFn

    if trainer.state.fn == TrainerFn.FITTING:
        return trainer.fit_loop.epoch_loop._batches_that_stepped
    return trainer.global_step
