"""What an exact mid-epoch resume needs beyond Lightning's own state (docs/design.md §6).

Lightning checkpoints the weights, the optimizer, the schedule, the loop counters and the callbacks. A
run resumed from that alone would still differ from one never stopped: the training hidden state that
the next window continues, the random generators (dropout) and the divergence guard's reference loss
would start afresh. This callback saves them under ``checkpoint["seqexp"]`` and puts them back when
training starts. tasks/train.py adds it to every run: it is how a run keeps its promise to continue.

It also mends one blind spot of Lightning's restart: a checkpoint written by a validation after an
epoch's last window (a stop, the end of a run, a scheduled check) is taken before the epoch ends. Lightning
resumes such a checkpoint correctly only when it would validate at that window again by its own
schedule; otherwise it trains one window too many in the old epoch and the next epoch repeats it. The
loop counters are read as those of a checkpoint written when that last window's step ended, a state
Lightning resumes exactly into the next epoch (:func:`as_saved_after_the_last_window`). What the epoch's
end still owed then is made up before the next epoch's first window: the step of the epoch-interval
ReduceLROnPlateau schedulers, with the values they monitor as the checkpoint saw them (Lightning steps the
other epoch-interval schedulers with the last window, so the checkpoint already holds their step). And the
plateau step that Lightning skips at the end of a resumed run's first epoch is let through.

Two more gaps in Lightning's restart are closed here: the training loader gets its saved position even
when a schedule that reads the run's length (cosine) made Lightning set up the data before it read the
checkpoint, and (:class:`AlignedLoggingStep`) the logging step starts at the resumed step whatever hook
wrote the checkpoint.
"""

from typing import TYPE_CHECKING, Any, NamedTuple, cast

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.types import LRSchedulerConfig

from seqexp.models.sequence_model import State, map_state

if TYPE_CHECKING:
    # The module every run trains. Lightning passes it as a LightningModule, whose attributes it does not
    # declare (nn.Module types them all as Tensor | Module): the hooks cast it.
    from seqexp.module import SequenceLightningModule

RESUME_KEY = "seqexp"  # where checkpoints keep the state that Lightning does not


class Resumed(NamedTuple):
    """What a checkpoint restores that only takes effect once training starts."""

    next_window: int  # the training window the interrupted epoch would have served next
    train_state: State  # this rank's hidden state after the last trained window
    rng: torch.Tensor | None  # this rank's CPU generator
    cuda_rng: torch.Tensor | None
    # The epoch whose end the checkpoint preceded and the values its plateau schedulers monitor, when the
    # restart skips that end (None otherwise, or for a checkpoint that did not save them).
    epoch_end: tuple[int, dict[str, torch.Tensor]] | None


class ExactResume(pl.Callback):
    """Saves every rank's training state and generators with each checkpoint, and restores this rank's."""

    def __init__(self) -> None:
        self._resumed: Resumed | None = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Called on every rank (the gathers are collective); rank 0 writes the file.
        module = cast("SequenceLightningModule", pl_module)

        def gathered(tensor: torch.Tensor) -> torch.Tensor:
            """Every rank's ``tensor`` stacked on a new first dimension (on the CPU)."""
            tensor = tensor.detach()
            if trainer.world_size == 1:
                return tensor.unsqueeze(0).cpu()
            # all_gather gives back what it was given (a tensor here); Lightning annotates every container.
            return cast(torch.Tensor, module.all_gather(tensor.to(module.device))).cpu()

        cuda = module.device.type == "cuda"
        checkpoint[RESUME_KEY] = {
            "world_size": trainer.world_size,
            "next_window": trainer.fit_loop.epoch_loop.batch_progress.current.ready,
            "train_state": map_state(gathered, module.states["train"]),
            "rng": gathered(torch.get_rng_state()),
            "cuda_rng": gathered(torch.cuda.get_rng_state(module.device)) if cuda else None,
            "reference_loss": module.reference_loss,
            "validated_at_step": module.validated_at_step,
            # Lightning keeps no metrics in a checkpoint, and a plateau step at the epoch's end reads them.
            "plateau_metrics": {
                config.monitor: trainer.callback_metrics[config.monitor].detach().cpu()
                for config in epoch_plateau_schedulers(trainer)
                if config.monitor in trainer.callback_metrics
            },
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        module = cast("SequenceLightningModule", pl_module)
        saved = checkpoint.get(RESUME_KEY)
        if saved is None:  # a checkpoint from before resumable ones: weights and optimizer only
            return
        rank = trainer.global_rank

        def mine(state: State) -> State:
            return map_state(lambda stacked: stacked[rank], state)

        fit_loop = checkpoint["loops"]["fit_loop"]
        epoch = fit_loop["epoch_progress"]["current"]["completed"]  # the one it was in: trainer.current_epoch
        skips_the_epoch_end = as_saved_after_the_last_window(fit_loop)
        plateau_metrics = saved.get("plateau_metrics")  # (absent from checkpoints older than its step)
        epoch_end = (epoch, plateau_metrics) if skips_the_epoch_end and plateau_metrics is not None else None
        module.reference_loss = saved.get("reference_loss")  # (set again from the next loss when absent)
        module.validated_at_step = saved["validated_at_step"]
        train_state = mine(saved["train_state"])
        # The generators' states were saved as single tensors (or None), so this rank's rows are too.
        rng = cast(torch.Tensor | None, mine(saved["rng"]))
        cuda_rng = cast(torch.Tensor | None, mine(saved["cuda_rng"]))
        self._resumed = Resumed(saved["next_window"], train_state, rng, cuda_rng, epoch_end)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Restored here rather than at load: the generators after everything that set up the run has
        # drawn from them, the state once the module is on its device. (Lightning does not call
        # on_train_epoch_start when it resumes in the middle of an epoch, so the state survives.)
        resumed, self._resumed = self._resumed, None
        if resumed is None:
            return
        fit_loop = trainer.fit_loop
        if fit_loop._combined_loader_states_to_load and fit_loop._data_fetcher is not None:
            # Lightning hands the training loader its saved position when it sets up the data, but a
            # schedule that asks for the run's length (trainer.estimated_stepping_batches: cosine) made it
            # set them up before it read the checkpoint, and it does not do it again: the interrupted epoch
            # would start again from its first window. Hand it over now, and start the loader there.
            # (Private members: see the pin in pyproject.toml.)
            fit_loop._load_combined_loader_states()
            iter(fit_loop._data_fetcher)
        if resumed.rng is not None:
            torch.set_rng_state(resumed.rng.cpu().clone())  # a row of the stacked ranks' states: a view
        if resumed.cuda_rng is not None and pl_module.device.type == "cuda":
            torch.cuda.set_rng_state(resumed.cuda_rng.cpu(), pl_module.device)
        if resumed.train_state is not None and resumed.next_window % trainer.num_training_batches:
            module = cast("SequenceLightningModule", pl_module)
            module.states["train"] = map_state(lambda part: part.to(module.device), resumed.train_state)
        if resumed.epoch_end is not None:
            step_plateau_schedulers_at_the_end_of(*resumed.epoch_end, trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning skips the plateau step at the end of a resumed run's first epoch while its fit loop is
        # restarting, which a run bounded by max_steps is until that epoch ends: meant for a restart at the
        # end of an epoch already stepped, it also skips an end that the checkpoint preceded. (A private
        # flag, whose setter keeps it set: see the pin in pyproject.toml.)
        fit_loop = trainer.fit_loop
        if fit_loop.restarting and not fit_loop.restarted_on_epoch_end:
            fit_loop._restarting = False


class AlignedLoggingStep(pl.Callback):
    """A fit's first batch logs at its global step.

    Lightning logs at ``epoch_loop._batches_that_stepped``, which a checkpoint holds one behind the global
    step; its restart adds the one back only for the checkpoints it expects (a validation it scheduled,
    the end of a step), not for one that a stop's validation wrote, and a resumed run's curves would
    repeat a step. tasks/train.py puts this callback first, so that the learning rate's point, logged as
    the batch starts, is aligned too. (A private counter: see the pin in pyproject.toml.)"""

    def __init__(self) -> None:
        self._first_batch = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_batch = True

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._first_batch:  # (a fresh run's are both 0)
            trainer.fit_loop.epoch_loop._batches_that_stepped = trainer.global_step
            self._first_batch = False


def epoch_plateau_schedulers(trainer: pl.Trainer) -> list[LRSchedulerConfig]:
    """The ReduceLROnPlateau schedulers that Lightning steps when an epoch ends (and only then)."""
    return [c for c in trainer.lr_scheduler_configs if c.reduce_on_plateau and c.interval == "epoch"]


def step_plateau_schedulers_at_the_end_of(
    epoch: int, metrics: dict[str, torch.Tensor], trainer: pl.Trainer, pl_module: pl.LightningModule
) -> None:
    """Step the epoch-interval plateau schedulers as the end of ``epoch`` would have, with the monitored
    ``metrics`` it would have read (``_FitLoop.on_advance_end`` -> ``_update_learning_rates``)."""
    for config in epoch_plateau_schedulers(trainer):
        value = metrics.get(cast(str, config.monitor))
        # A value the checkpoint did not see is skipped: one missing at the validation's end (the run never
        # stopped failed there, or skipped as well), or one logged only by the epoch's end hooks (inexact).
        if (epoch + 1) % config.frequency == 0 and value is not None:
            pl_module.lr_scheduler_step(config.scheduler, value)


def as_saved_after_the_last_window(fit_loop: dict[str, Any]) -> bool:
    """Rewrite, in place, the counters of a checkpoint that a validation wrote after the last window of an
    epoch (every window of it started, processed and completed; the epoch itself not yet processed) into
    those of one written when that window's training step ended (its batch not yet counted completed).

    Lightning restarts the two differently. From the second it goes on with the next epoch's first window,
    as the run never stopped would. From the first it does so only if its own schedule validates at that
    window; otherwise (the validation was a stop's, or the one at the end of a run that is now extended)
    it trains a window past the epoch's end, which the resumable loader serves as the next epoch's first,
    and the next epoch trains it again. Returns whether it rewrote them: from the rewritten counters the
    restart also skips what the epoch's end still owed (the caller makes it up)."""
    windows, epochs = fit_loop["epoch_loop.batch_progress"], fit_loop["epoch_progress"]["total"]
    # Lightning's progress trackers count each window ready, started, processed and completed.
    every_stage_equal = all(len(set(windows[kind].values())) == 1 for kind in ("total", "current"))
    validated_after_last_window = windows["is_last_batch"] and every_stage_equal
    epoch_not_processed = epochs["processed"] == epochs["started"] - 1
    rewrite = validated_after_last_window and epoch_not_processed
    if rewrite:
        windows["total"]["completed"] -= 1
        windows["current"]["completed"] -= 1
    return rewrite
