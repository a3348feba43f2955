"""What a run shows besides Lightning's own scalars (the callbacks' figures, text samples and scalars),
sent to every logger of the run that takes it, at the step its validation is logged at; and how each
logger continues its record when a run resumes.

A logger takes figures and text by having ``show_figure`` and ``show_text`` (:class:`MediaLogger`),
continues a record by having ``continue_at`` (:class:`ContinuesRecord`), and closes it when the job ends
by having ``end_record`` (:class:`EndsRecord`). Any other Lightning logger still
gets every scalar and the hyperparameters; one line at the start says what it does not get.
"""

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pytorch_lightning as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

if TYPE_CHECKING:
    from seqexp.trackers.files import MetricsFile


@runtime_checkable
class MediaLogger(Protocol):
    def show_figure(self, tag: str, image: np.ndarray, step: int) -> None:
        """Show ``image`` (height x width x RGB, uint8) as ``tag`` at ``step``."""

    def show_text(self, tag: str, text: str, step: int) -> None:
        """Show ``text`` as it is (line breaks kept) as ``tag`` at ``step``."""


@runtime_checkable
class EndsRecord(Protocol):
    def end_record(self, succeeded: bool) -> None:
        """Close the record when the run's job ends (Lightning's ``finalize`` comes after every fit,
        validate and test, so it cannot)."""


@runtime_checkable
class ContinuesRecord(Protocol):
    def continue_at(self, step: int | None, logged: Mapping[str, int]) -> bool:
        """Make the record continue at ``step`` (None: a run that starts again from its beginning in a
        folder where an attempt may have logged): points an earlier attempt logged from ``step`` on are
        dropped or, where the logger cannot drop them, not logged again (``logged``: the last step of each
        name the earlier attempt logged). Whether there was an earlier record."""


class SendsEachPointOnce(Logger):
    """How a tracker that keeps every point it was sent (MLflow, W&B) continues a record: the points an
    earlier attempt logged are not sent again (a resumed run is exact, so they are the same values).

    Placed before the Lightning logger among a tracker's bases; the tracker sets ``_resumed`` when the run
    folder already holds a run of it (trackers.json).
    """

    _resumed = False
    _logged: Mapping[str, int] = MappingProxyType({})  # the earlier attempts' last step of each name

    def is_new(self, name: str, step: int | None) -> bool:
        return step is None or step > self._logged.get(name, -1)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        fresh = {name: value for name, value in metrics.items() if self.is_new(name, step)}
        if fresh:  # to the tracker's Lightning logger, next in its bases (mypy sees Logger's abstract one)
            super().log_metrics(fresh, step)  # type: ignore[safe-super]

    def continue_at(self, step: int | None, logged: Mapping[str, int]) -> bool:
        if not self._resumed:
            return False
        held = self.held_steps()
        self._logged = {name: max(logged.get(name, -1), held.get(name, -1)) for name in {*logged, *held}}
        return bool(logged)

    def held_steps(self) -> dict[str, int]:
        """The last step of each name the tracker itself holds, where it can say: a kill between the
        tracker's write and metrics.csv's leaves it a point ahead of the file."""
        return {}


class RunLog:
    """The loggers of one run, for the callbacks: scalars go to every logger, figures and text to those
    that take them. Figures are rendered once for all of them."""

    def __init__(self, loggers: Sequence[Logger]) -> None:
        self.loggers = list(loggers)
        self.media = [logger for logger in self.loggers if isinstance(logger, MediaLogger)]

    @property
    def shows_media(self) -> bool:
        """Whether any logger takes figures and text: drawing them for none would waste the time."""
        return bool(self.media)

    @property
    def run_dir(self) -> Path | None:
        """The run's folder, where files for scripts/report.py go (the metrics file's folder)."""
        files = metrics_file(self.loggers)
        return None if files is None else Path(files.save_dir)

    def scalar(self, tag: str, value: float, step: int) -> None:
        for logger in self.loggers:
            logger.log_metrics({tag: value}, step)

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        image = rendered(figure)
        for logger in self.media:
            logger.show_figure(tag, image, step)

    def text(self, tag: str, text: str, step: int) -> None:
        for logger in self.media:
            logger.show_text(tag, text, step)


def run_log(trainer: pl.Trainer) -> RunLog:
    return RunLog(trainer.loggers)


def rendered(figure: Figure) -> np.ndarray:
    """``figure`` as an RGB image (height x width x 3, uint8), drawn by Agg with no display."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def metrics_file(loggers: Sequence[Logger]) -> "MetricsFile | None":
    from seqexp.trackers.files import MetricsFile

    return next((logger for logger in loggers if isinstance(logger, MetricsFile)), None)


def continue_records(trainer: pl.Trainer, step: int | None) -> bool:
    """Make every logger continue its record at ``step`` (see :class:`ContinuesRecord`); whether an
    earlier attempt had left one. Rank 0 only: the other ranks log nothing."""
    if trainer.global_rank != 0:
        return False
    files = metrics_file(trainer.loggers)
    logged = files.last_steps() if files is not None else {}
    restarted = False
    for logger in trainer.loggers:
        if isinstance(logger, ContinuesRecord):
            restarted = logger.continue_at(step, logged) or restarted
    return restarted


def log_hyperparams(trainer: pl.Trainer, params: dict[str, object], metrics: dict[str, float]) -> None:
    """The knobs with the final metrics, to every logger, the metrics at the run's last step: beside the
    knobs where the logger takes them so (TensorBoard's HPARAMS tab), else as scalars."""
    for logger in trainer.loggers:
        if "metrics" in inspect.signature(logger.log_hyperparams).parameters:
            logger.log_hyperparams(params, metrics, step=trainer.global_step)
        else:
            logger.log_hyperparams(params)
            logger.log_metrics(metrics, trainer.global_step)
        logger.finalize("success")


def end_records(trainer: pl.Trainer, succeeded: bool) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, EndsRecord):
            logger.end_record(succeeded)


def announce_what_loggers_miss(loggers: Sequence[Logger]) -> None:
    """One line for each logger that does not take figures and text samples, so nothing goes missing
    without a word."""
    from seqexp.trackers.files import MetricsFile

    for logger in loggers:
        if not isinstance(logger, MediaLogger | MetricsFile):
            rank_zero_info(
                f"logger {type(logger).__name__} takes the scalars and hyperparameters only: the figures "
                "and text samples are not sent to it"
            )


def validation_log_step(trainer: pl.Trainer) -> int:
    """The step Lightning logs a validation's scalars at (during fit: the batches stepped so far)."""
    from pytorch_lightning.trainer.states import TrainerFn

    if trainer.state.fn == TrainerFn.FITTING:
        return trainer.fit_loop.epoch_loop._batches_that_stepped
    return trainer.global_step
