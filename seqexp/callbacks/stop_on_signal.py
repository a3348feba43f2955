"""SIGTERM, SIGINT (Ctrl-C), SIGUSR1 and SIGUSR2 stop training at the end of the current step.

The handlers only note the signal; at the end of the step every rank agrees to stop (one of them having
seen it is enough), Lightning validates once more because training stops early, and the run ends the
usual way with its checkpoints written (seqexp.callbacks.latest_checkpoint). The train task then
records ``interrupted`` and exits with 128 + the signal number. A second Ctrl-C stops at once: the run is
``interrupted`` all the same, and continues from its last checkpoint. Under DDP it acts as if there were
no handler, so that Lightning ends the other ranks too. Only SIGINT counts twice: the other signals may
reach a process twice for one request (SLURM signals every process of a job, and a sweep passes the
signals it gets on to its jobs, a Ctrl-C as SIGTERM: seqexp/app/sweep_signals.py).

A signal during a validation of the fit cuts it short at the next batch: a long validation would
otherwise hold the stop for minutes (SLURM kills 30 s after its SIGTERM). Its partial losses are
discarded, ``last.ckpt`` is written as after any validation, and the run ends there, without judging
the validation that did not happen (no best checkpoint, diagnostics or validation at the end): its
scores are those of the last full validation, and its status says so.

The handlers are installed when training starts, after Lightning installs its own, and Lightning puts
back the ones that were there before when the fit ends.
"""

import signal
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_info

from seqexp.callbacks.latest_checkpoint import LatestCheckpoint
from seqexp.errors import STOP_SIGNALS, RunInterrupted
from seqexp.module import SequenceLightningModule


class StopOnSignal(pl.Callback):
    def __init__(self) -> None:
        self.received: int | None = None  # the first signal that arrived during training
        self.stopped = False  # training ended because of it
        self.cut_short: str | None = None  # which validation the signal cut short, in words
        self._one_process = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._one_process = trainer.world_size == 1
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.received == signum == signal.SIGINT:  # asked twice: stop waiting for the step to end
            if self._one_process:
                # Not a KeyboardInterrupt, which Lightning turns into exit status 1 (a failure).
                raise RunInterrupted(signum)
            signal.signal(signum, signal.default_int_handler)
            signal.raise_signal(signum)
        self.received = self.received or signum

    def on_validation_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        # The validation that a stop asks for (the signal came during training) is the run's result.
        if self.stopped or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        stop = self.received is not None
        if trainer.world_size > 1:  # every rank leaves the validation at the same batch
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        self.received = self.received or signal.SIGTERM
        self.stopped = True
        trainer.should_stop = True
        batches = trainer.num_val_batches[dataloader_idx] if trainer.num_val_batches else "?"
        assert isinstance(pl_module, SequenceLightningModule), "seqexp trains SequenceLightningModule"
        scored = pl_module.validated_at_step
        self.cut_short = (
            f"the signal cut short the validation at step {trainer.global_step} after {batch_idx} of "
            f"{batches} batches; "
            + ("no validation has scored yet" if scored is None else f"the scores are from step {scored}")
        )
        pl_module.discard_evaluation()
        raise StopIteration  # Lightning's evaluation loop ends here, as when its data runs out

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.cut_short is None:
            return
        # Before the callbacks that would judge it (the best checkpoint, early stopping, diagnostics).
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(callback, LatestCheckpoint):
                callback.save(trainer)
        assert self.received is not None, "a validation is cut short for a signal"
        rank_zero_info(self.cut_short)
        raise RunInterrupted(self.received, note=self.cut_short)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:  # a signal may reach one rank only (kill PID); all stop at this step
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self.received = self.received or signal.SIGTERM
            self.stopped = True
            trainer.should_stop = True
