"""A cosine that follows ``trainer.max_time`` (docs/design.md §7): a run limited by time anneals fully by
its end, whatever the machine's speed."""

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer

from seqexp.optimization import WarmupCosineFactor

# How often (optimizer steps) the steps left are re-estimated: often enough to follow a changing pace,
# rarely enough that the broadcast that keeps DDP ranks on one lr costs nothing.
BUDGET_EVERY_STEPS = 10


class FollowTimeBudget(pl.Callback):
    """Every BUDGET_EVERY_STEPS steps, estimate the steps the time budget allows from the pace so far (the
    time-elapsed clock of Lightning's Timer, which a resumed run restores) and end the cosine there.

    Rank 0's estimate is broadcast: ranks that annealed by their own clocks would step with different
    learning rates and drift apart. tasks/train.py adds it to every run; without ``max_time`` (no Timer)
    it does nothing.
    """

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == 0 or step % BUDGET_EVERY_STEPS:  # first, so that the other steps do no more than this
            return
        # Lightning's CallbackConnector sets trainer.callbacks, which Trainer does not declare.
        callbacks = trainer.callbacks  # type: ignore[attr-defined]
        timer = next((c for c in callbacks if isinstance(c, Timer)), None)
        if timer is None:
            return
        elapsed, remaining = timer.time_elapsed("train"), timer.time_remaining("train")
        budget = step + int(remaining * step / elapsed) if remaining is not None and elapsed > 0 else None
        budget = trainer.strategy.broadcast(budget, src=0)
        for config in trainer.lr_scheduler_configs:
            for factor in getattr(config.scheduler, "lr_lambdas", []):
                if isinstance(factor, WarmupCosineFactor):
                    factor.budget_steps = budget
