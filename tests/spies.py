"""Callbacks that tests add to real runs (``+callbacks.<name>._target_=tests.spies.<Class>``)."""

import json
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


class TokenMappingRecorder(pl.Callback):
    """Records, for this rank, which file and inode its training rows are a view of (from /proc/self/maps),
    to ``<out_dir>/rank<global rank>.json``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_start(self, trainer, pl_module) -> None:
        rows = trainer.train_dataloader.dataset.rows
        address = rows.data_ptr()
        mapped = None
        for line in Path("/proc/self/maps").read_text().splitlines():
            fields = line.split()
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            if start <= address < end and len(fields) >= 6:
                mapped = {"path": fields[5], "inode": int(fields[4])}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"dtype": str(rows.dtype), "mapped": mapped}
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


class PairRecorder(BatchRecorder):
    """Saves every training batch as an ``(inputs, targets)`` pair, for datasets with their own targets."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append(tuple(part.detach().cpu().clone() for part in batch))


class AnomalyRecorder(pl.Callback):
    """Records whether autograd anomaly detection is on during training (in ``seen``)."""

    seen: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        AnomalyRecorder.seen.append(torch.is_anomaly_enabled())
