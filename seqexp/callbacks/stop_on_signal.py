"""SIGTERM, SIGINT (Ctrl-C), SIGUSR1 and SIGUSR2 stop training at the end of the current step.

The handlers only note the signal; at the end of the step every rank agrees to stop (one of them having
seen it is enough), Lightning validates once more because training stops early, and the run ends the
usual way with its checkpoints written (seqexp.callbacks.latest_checkpoint). The train task then
records ``interrupted`` and exits with 128 + the signal number. A second identical signal stops at once
(Ctrl-C twice): the run is ``interrupted`` all the same, and continues from its last checkpoint. Under
DDP it acts as if there were no handler, so that Lightning ends the other ranks too. A repeat within
:data:`SAME_REQUEST_S` is the first request arriving twice, not a second one: a job of a sweep gets a
terminal's Ctrl-C (or SLURM's SIGTERM) itself, and again from its sweep, which passes signals on
(seqexp/app/sweep_signals.py).

The handlers are installed when training starts, after Lightning installs its own, and Lightning puts
back the ones that were there before when the fit ends.
"""

import signal
from types import FrameType
from typing import Any

import pytorch_lightning as pl

from seqexp.errors import STOP_SIGNALS, RunInterrupted


class StopOnSignal(pl.Callback):
    def __init__(self) -> None:
        self.received: int | None = None  # the first signal that arrived during training
        self.stopped = False  # training ended because of it
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
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
            signal.raise_signal(signum)
        self.received = self.received or signum

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
