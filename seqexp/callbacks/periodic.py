"""Diagnostics that run at some validations only: the first, every ``every``-th after it, and once more
when training ends if the final model was not measured, so that the last value is the final model's."""

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from seqexp.errors import ConfigError
from seqexp.trackers.run_log import RunLog, run_log


class PeriodicDiagnostic(pl.Callback):
    """Subclasses implement :meth:`applies` and :meth:`measure`; ``key`` names them in messages."""

    key = "callbacks.<name>."

    def __init__(self, every: int) -> None:
        if every < 1:
            raise ConfigError(f"{self.key}every={every} is invalid: it must be an integer >= 1")
        self.every = every
        self.validations = 0
        self.measured_at: int | None = None  # the global step of the last measurement

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations, "measured_at": self.measured_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations, self.measured_at = state_dict["validations"], state_dict["measured_at"]

    def applies(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        return True

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule, log: RunLog) -> None:
        raise NotImplementedError

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log = run_log(trainer)
        if trainer.sanity_checking or not log.shows_media or not self.applies(trainer, pl_module):
            return
        self.validations += 1
        if (self.validations - 1) % self.every == 0:
            self._measure(trainer, pl_module, log)

    @rank_zero_only
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log = run_log(trainer)
        if not log.shows_media or self.validations == 0 or self.measured_at == trainer.global_step:
            return
        self._measure(trainer, pl_module, log)

    def _measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule, log: RunLog) -> None:
        self.measure(trainer, pl_module, log)
        self.measured_at = trainer.global_step
