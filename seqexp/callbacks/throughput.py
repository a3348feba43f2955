"""Training throughput: tokens per second over each training epoch, logged as ``train/tokens_per_s``.

A token is one time step of one row (a character, word or bpe piece of text, a sample of the curve for
sine), counted over all ranks, so runs with different batch sizes and sequence lengths compare on the
same footing. The clock covers the training batches only: it stops for validation inside the epoch and at the
epoch's end, and starts again at the next training batch. It is read at those few points only, never
per step, because a per-step host synchronisation would slow down the GPU runs it measures; on CUDA
one synchronize at each reading makes the clock include the kernels still queued.
"""

import time
from typing import Any

import pytorch_lightning as pl
import torch


class Throughput(pl.Callback):
    def __init__(self) -> None:
        self._tokens = 0
        self._elapsed = 0.0
        self._since: float | None = None  # when the clock was started, None while it is stopped

    def _now(self, pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def _stop(self, pl_module: pl.LightningModule) -> None:
        if self._since is not None:
            self._elapsed += self._now(pl_module) - self._since
            self._since = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._tokens, self._elapsed, self._since = 0, 0.0, None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._since is None:
            self._since = self._now(pl_module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        x = batch[0]
        self._tokens += x.shape[0] * x.shape[1]  # shapes live on the host: no synchronisation

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop(pl_module)
        if self._tokens and self._elapsed > 0:
            # Ranks run in lock-step on equal batches (contract 1), so one rank's rate times the
            # number of ranks is the total.
            rate = self._tokens * trainer.world_size / self._elapsed
            pl_module.log("train/tokens_per_s", rate, on_step=False, on_epoch=True)
