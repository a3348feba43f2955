"""``checkpoints/last.ckpt`` always holds the latest state of the run.

Lightning's ModelCheckpoint rewrites ``last.ckpt`` only when it saves a better one, so a run whose
val/loss stopped improving kept an old "last" state. This callback writes it after every validation,
every ``every_n_steps`` optimizer steps and every ``every_n_minutes`` minutes of training (the
``save_every_steps`` and ``save_every_minutes`` knobs), and once more when training ends, whether by its
limits, early stopping or a signal. Each write is atomic (seqexp.checkpoints.AtomicCheckpointIO), and
the module adds what a mid-epoch resume needs (hidden state, stream position, generators).
"""

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn

from seqexp.run_layout import LAST


class LatestCheckpoint(pl.Callback):
    def __init__(self, dirpath: str, every_n_steps: int | None, every_n_minutes: float | None):
        self.path = Path(dirpath) / LAST
        self.every_n_steps = every_n_steps
        self.every_n_seconds = None if every_n_minutes is None else every_n_minutes * 60
        self._saved_at: float = time.monotonic()
        self._saved: tuple[int, int | None] | None = None  # the step and validation last.ckpt holds
        self._flush_at_next_batch = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._saved_at = time.monotonic()
        self._saved = self._holding(trainer)  # a resumed run's checkpoint already holds them

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        due = self.every_n_steps is not None and step % self.every_n_steps == 0
        if self.every_n_seconds is not None:
            due = due or time.monotonic() - self._saved_at >= self.every_n_seconds
        if trainer.world_size > 1:  # the clocks of the ranks differ; saving is collective
            due = trainer.strategy.reduce_boolean_decision(due, all=False)
        if due:
            self.save(trainer)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._flush_at_next_batch:  # Lightning logs a step's metrics after on_train_batch_end
            self._flush_at_next_batch = False
            for logger in trainer.loggers:
                logger.save()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)

    @staticmethod
    def _holding(trainer: pl.Trainer) -> tuple[int, int | None]:
        """What a checkpoint written now would hold: the step trained to, and the step of the last
        validation that scored (a periodic save and a validation can fall on one step)."""
        return trainer.global_step, getattr(trainer.lightning_module, "validated_at_step", None)

    def save(self, trainer: pl.Trainer) -> None:
        if self._saved == self._holding(trainer) and self.path.exists():
            return  # nothing trained or validated since the last write
        for logger in trainer.loggers:  # what was logged before the checkpoint is on disk before it
            logger.save()
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state: resume needs it
        self._flush_at_next_batch = True
        self._saved_at, self._saved = time.monotonic(), self._holding(trainer)
