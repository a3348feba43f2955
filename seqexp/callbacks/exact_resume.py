"""What an exact mid-epoch resume needs beyond Lightning's own state (docs/design.md §6).

Lightning checkpoints the weights, the optimizer, the schedule, the loop counters and the callbacks. A
run resumed from that alone would still differ from one never stopped: the training hidden state that
the next window continues, the random generators (dropout) and the divergence guard's reference loss
would start afresh. This callback saves them under ``checkpoint["seqexp"]`` and puts them back when
training starts. tasks/train.py adds it to every run: it is how a run keeps its promise to continue.
"""

from typing import TYPE_CHECKING, Any, NamedTuple, cast

import pytorch_lightning as pl
import torch

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


class ExactResume(pl.Callback):
    """Saves every rank's training state and generators with each checkpoint, and restores this rank's."""

    def __init__(self) -> None:
        self._resumed: Resumed | None = None
        self._realign_log_step = False

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

        module.reference_loss = saved.get("reference_loss")  # (set again from the next loss when absent)
        module.validated_at_step = saved["validated_at_step"]
        train_state = mine(saved["train_state"])
        # The generators' states were saved as single tensors (or None), so this rank's rows are too.
        rng = cast(torch.Tensor | None, mine(saved["rng"]))
        cuda_rng = cast(torch.Tensor | None, mine(saved["cuda_rng"]))
        self._resumed = Resumed(saved["next_window"], train_state, rng, cuda_rng)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Restored here rather than at load: the generators after everything that set up the run has
        # drawn from them, the state once the module is on its device. (Lightning does not call
        # on_train_epoch_start when it resumes in the middle of an epoch, so the state survives.)
        resumed, self._resumed = self._resumed, None
        if resumed is None:
            return
        self._realign_log_step = True
        if resumed.rng is not None:
            torch.set_rng_state(resumed.rng.cpu().clone())  # a row of the stacked ranks' states: a view
        if resumed.cuda_rng is not None and pl_module.device.type == "cuda":
            torch.cuda.set_rng_state(resumed.cuda_rng.cpu(), pl_module.device)
        if resumed.train_state is not None and resumed.next_window % trainer.num_training_batches:
            module = cast("SequenceLightningModule", pl_module)
            module.states["train"] = map_state(lambda part: part.to(module.device), resumed.train_state)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Lightning writes a checkpoint from a validation it did not schedule (a stop) with its logging
        # step one behind global_step, and re-aligns it only for the checkpoints it knows; unaligned, a
        # resumed run's curves would repeat a step. (A private counter: see the pin in pyproject.toml.)
        if self._realign_log_step:
            trainer.fit_loop.epoch_loop._batches_that_stepped = trainer.global_step
            self._realign_log_step = False
