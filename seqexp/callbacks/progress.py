"""Progress for a person at a terminal, or for a log file: chosen by whether stderr is a terminal.

At a terminal Lightning's bar redraws itself in place with carriage returns. Written to a file (a log,
a SLURM job, CI) those redraws pile up, about 1 MB for a Shakespeare run; there a plain line every
``interval_s`` seconds says what a reader of the log wants: step, loss, tokens per second and the
time left.
"""

import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, Timer, TQDMProgressBar
from pytorch_lightning.utilities import rank_zero_only


def progress_bar(refresh_rate: int, interval_s: float) -> ProgressBar:
    """Lightning's bar (refreshed every ``refresh_rate`` steps) at a terminal, else :class:`LogProgress`."""
    if sys.stderr.isatty():
        return TQDMProgressBar(refresh_rate=refresh_rate)
    return LogProgress(interval_s)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class LogProgress(ProgressBar):
    """``step 200/600 (33%)  loss 1.92  tokens/s 41,200  elapsed 0:16  ETA 0:32`` on stderr every
    ``interval_s`` seconds of training, and the validation metrics after each validation."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._enabled = True
        self._start = self._last = 0.0
        self._tokens = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _say(self, line: str) -> None:
        if self._enabled:
            print(line, file=sys.stderr, flush=True)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last = time.monotonic()
        self._tokens = 0

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        x = batch[0]
        self._tokens += x.shape[0] * x.shape[1] * trainer.world_size  # host-side shapes: no device sync
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._say(self._line(trainer, now))

    def _line(self, trainer: pl.Trainer, now: float) -> str:
        step, elapsed = trainer.global_step, now - self._start
        total = trainer.estimated_stepping_batches
        counted = bool(total) and total != float("inf")  # a step limit, rather than epochs of unknown length
        left = elapsed / step * (total - step) if step and counted else None
        # Whichever limit ends the run sooner, the step count or trainer.max_time (Lightning's Timer),
        # is the one the percentage and the ETA follow.
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # type: ignore[attr-defined]
        time_left = timer.time_remaining("train") if timer is not None else None
        if time_left is not None:
            time_left = max(time_left, 0.0)  # the Timer checks at the end of a step, so it can overrun
        parts = [f"step {step}"]
        if time_left is not None and (left is None or time_left < left):
            spent = timer.time_elapsed("train") if timer is not None else elapsed
            parts = [f"step {step} ({spent / max(spent + time_left, 1e-9):.0%} of trainer.max_time)"]
            left = time_left
        elif counted:
            parts = [f"step {step}/{int(total)} ({step / total:.0%})"]
        loss = trainer.progress_bar_metrics.get("train/loss")
        if loss is not None:
            parts.append(f"loss {float(loss):.4g}")
        parts.append(f"tokens/s {self._tokens / max(elapsed, 1e-9):,.0f}")
        parts.append(f"elapsed {_duration(elapsed)}")
        if left is not None:
            parts.append(f"ETA {_duration(left)}")
        return "  ".join(parts)

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        shown = {k: float(v) for k, v in trainer.progress_bar_metrics.items() if k.startswith("val/")}
        if shown:
            metrics = "  ".join(f"{name} {value:.4g}" for name, value in sorted(shown.items()))
            self._say(f"validation at step {trainer.global_step}: {metrics}")

    @rank_zero_only
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._say(self._line(trainer, time.monotonic()).replace("  ETA 0:00", "") + "  (done)")
