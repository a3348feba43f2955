"""A run validates at its last step, wherever training stops, so every run ends with a result.

Lightning validates when an epoch ends (or every ``val_check_interval`` steps) and when something asks
training to stop early (``trainer.should_stop``: a signal, ``max_time``, divergence). A run that ends by
``max_steps`` in the middle of an epoch, or at the end of an epoch between two ``val_check_interval``
validations, would end unscored; this callback asks for the stop itself one step earlier than Lightning
would notice, which makes Lightning validate first.
"""

from typing import Any

import pytorch_lightning as pl


class ValidateAtEnd(pl.Callback):
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        steps_done = 0 < trainer.max_steps <= trainer.global_step
        epochs = trainer.max_epochs  # -1, or None: no limit (Lightning turns null into -1 with max_steps)
        last_epoch = epochs is not None and epochs > 0 and trainer.current_epoch + 1 >= epochs
        epochs_done = last_epoch and batch_idx + 1 >= trainer.num_training_batches
        if steps_done or epochs_done:
            trainer.should_stop = True
