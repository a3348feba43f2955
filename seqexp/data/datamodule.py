"""The base of every dataset: splits become streams of windows (contract 1), sharded by rank.

A dataset is one subclass implementing :meth:`StreamDataModule.load_splits` (and, for text,
:attr:`vocab`), plus one YAML in conf/data/ whose ``_target_`` names it.
"""

from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from seqexp.data.streams import WindowStream
from seqexp.errors import ConfigError


@dataclass(frozen=True)
class DataSpec:
    """What the model must know about the data: sizes come from here, never from YAML."""

    input_size: int  # features per float item, or vocabulary size for tokens
    output_size: int
    tokens: bool  # token ids (cross-entropy) rather than floats (MSE)
    vocab: tuple[str, ...] = ()
    # Leading windows of each evaluation run that only warm up the state (from zeros) and are not scored.
    eval_burn_in: int = 0


class StreamDataModule(pl.LightningDataModule):
    """Serves each split as in-order windows of this rank's contiguous rows."""

    # What one item of a series is, in messages to the user ("characters" for text).
    item_name = "items"

    def __init__(self, batch_size: int, seq_length: int, eval_burn_in: int = 0) -> None:
        super().__init__()
        if eval_burn_in < 0:
            raise ConfigError(f"data.eval_burn_in={eval_burn_in} is invalid: it must be an integer >= 0")
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.eval_burn_in = eval_burn_in
        self.splits: dict[str, torch.Tensor] = {}

    # -- what a dataset implements -------------------------------------------------------------
    def load_splits(self) -> dict[str, torch.Tensor]:
        """Return ``{"train": ..., "val": ..., optionally "test": ...}`` as 1-D token ids (long) or
        float series of shape ``(N, features)``."""
        raise NotImplementedError

    @property
    def spec(self) -> DataSpec:
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load_splits()

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def stream(self, split: str) -> WindowStream:
        """This rank's windows of ``split``."""
        self.setup()
        world_size, rank = self._world()
        return WindowStream(
            self.splits[split],
            self.batch_size,
            self.seq_length,
            world_size,
            rank,
            name=f"{split} split",
            unit=self.item_name,
        )

    def _loader(self, split: str) -> DataLoader:
        # Windows are ready-made batches: batch_size=None serves them as they are, in order, and
        # worker processes would buy nothing for a slice of a tensor.
        return DataLoader(self.stream(split), batch_size=None, shuffle=False, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def check_streams(self, world_size: int) -> None:
        """Raise ConfigError now, before training starts, if a split is too short for one window."""
        self.setup()
        for split, series in self.splits.items():
            stream = WindowStream(
                series,
                self.batch_size,
                self.seq_length,
                world_size,
                name=f"{split} split",
                unit=self.item_name,
            )
            if split != "train" and len(stream) <= self.eval_burn_in:
                raise ConfigError(
                    f"data.eval_burn_in={self.eval_burn_in} leaves nothing to score: the {split} split has "
                    f"{len(stream)} window(s); use a smaller eval_burn_in or a longer {split} split"
                )

    @property
    def has_test(self) -> bool:
        self.setup()
        return "test" in self.splits
