"""Callbacks that tests add to real runs (``+callbacks.<name>._target_=tests.spies.<Class>``)."""

from pathlib import Path

import pytorch_lightning as pl
import torch


class BatchRecorder(pl.Callback):
    """Saves every training input batch this rank saw to ``<out_dir>/rank<global rank>.pt``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.batches: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append(batch[0].detach().cpu().clone())

    def on_fit_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(self.batches, self.out_dir / f"rank{trainer.global_rank}.pt")


class AnomalyRecorder(pl.Callback):
    """Records whether autograd anomaly detection is on during training (in ``seen``)."""

    seen: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        AnomalyRecorder.seen.append(torch.is_anomaly_enabled())
