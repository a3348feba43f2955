"""The base of every dataset: splits become streams of windows (contract 1), sharded by rank.

A dataset is one subclass implementing :meth:`StreamDataModule.load_splits` and
:attr:`StreamDataModule.spec`, plus one YAML in conf/data/ whose ``_target_`` names it.
"""

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader

from seqexp.data.spec import DataSpec
from seqexp.data.streams import WindowStream
from seqexp.errors import ConfigError


def _limited(windows: int, limit: int | float) -> int:
    """How many of ``windows`` a Trainer limit lets through: a fraction of them or a number of them."""
    return int(windows * limit) if isinstance(limit, float) else min(windows, limit)


class StreamDataModule(pl.LightningDataModule):
    """Serves each split as in-order windows of this rank's contiguous rows."""

    # What one item of a series is, in messages to the user ("characters" for text).
    item_name = "items"
    # The spacing of consecutive items of a float series on the time axis of plots.
    time_step = 1.0
    # Leading windows of each evaluation that only warm up the state when data.eval_burn_in is null.
    default_eval_burn_in = 0

    def __init__(self, batch_size: int, seq_length: int, eval_burn_in: int | None = None) -> None:
        """``eval_burn_in=None``: :attr:`default_eval_burn_in` where the evaluation splits allow it."""
        super().__init__()
        if eval_burn_in is not None and eval_burn_in < 0:
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

    def _window_stream(
        self, split: str, world_size: int = 1, rank: int = 0, device: torch.device | None = None
    ) -> WindowStream:
        self.setup()
        return WindowStream(
            self.splits[split],
            self.batch_size,
            self.seq_length,
            world_size,
            rank,
            name=f"{split} split",
            unit=self.item_name,
            device=device,
        )

    def stream(self, split: str) -> WindowStream:
        """This rank's windows of ``split``, on the trainer's device (CPU without a trainer)."""
        trainer = self.trainer
        if trainer is None:
            return self._window_stream(split)
        return self._window_stream(
            split, trainer.world_size, trainer.global_rank, trainer.strategy.root_device
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

    def check_streams(self, trainer: pl.Trainer) -> None:
        """Raise ConfigError now, before training starts, if a split is too short for one window, the
        Trainer asks for more than the data gives, or validation would score nothing.

        A burn-in left at its default (``eval_burn_in: null``) adapts instead: one window where every
        evaluation has more than one, else none, with one log line saying so.
        """
        limit_val_batches = trainer.limit_val_batches
        if limit_val_batches == 0:
            raise ConfigError(
                "trainer.limit_val_batches=0 turns validation off, but the best checkpoint and a sweep's "
                "objective are chosen by val/loss: keep it > 0 (e.g. 0.25 or a number of windows)"
            )
        self.setup()
        windows = {split: len(self._window_stream(split, trainer.world_size)) for split in self.splits}
        train_windows = _limited(windows["train"], trainer.limit_train_batches)
        interval = trainer.val_check_interval
        if (
            isinstance(interval, int)
            and trainer.check_val_every_n_epoch is not None
            and interval > train_windows
        ):
            raise ConfigError(
                f"trainer.val_check_interval={interval} is longer than an epoch ({train_windows} training "
                "windows): use at most that many, a fraction such as 0.5, or "
                "trainer.check_val_every_n_epoch=null to count steps across epochs"
            )
        windows["val"] = _limited(windows["val"], limit_val_batches)
        evaluated = [split for split in windows if split != "train"]
        if self.eval_burn_in is None:
            shortest = min(windows[split] for split in evaluated)
            self.eval_burn_in = self.default_eval_burn_in if shortest > self.default_eval_burn_in else 0
            if self.eval_burn_in < self.default_eval_burn_in:
                rank_zero_info(
                    f"data.eval_burn_in: 0 rather than {self.default_eval_burn_in}, since an evaluation "
                    f"gives only {shortest} window(s) per row here; every window is scored from a zero state"
                )
        for split in evaluated:
            if windows[split] <= self.eval_burn_in:
                raise ConfigError(
                    f"data.eval_burn_in={self.eval_burn_in} leaves nothing to score: the {split} split "
                    f"gives {windows[split]} window(s) per evaluation; use a smaller eval_burn_in, a longer "
                    f"{split} split or a larger trainer.limit_val_batches"
                )

    @property
    def burn_in(self) -> int:
        """The evaluation burn-in in windows: as set, or the default until :meth:`check_streams` adapts it."""
        return self.default_eval_burn_in if self.eval_burn_in is None else self.eval_burn_in

    @property
    def has_test(self) -> bool:
        self.setup()
        return "test" in self.splits
