"""The base of every dataset: splits become streams of windows (contract 1), sharded by rank.

A dataset is one subclass implementing :meth:`StreamDataModule.load_splits` and
:attr:`StreamDataModule.spec`, plus one YAML in conf/data/ whose ``_target_`` names it.
"""

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader

from seqexp.data.spec import DataSpec
from seqexp.data.streams import Batch, WindowStream, min_items
from seqexp.errors import ConfigError

if TYPE_CHECKING:
    from seqexp.data.series import Forecasting


def _limited(windows: int, limit: int | float) -> int:
    """How many of ``windows`` a Trainer limit lets through: a fraction of them or a number of them."""
    return int(windows * limit) if isinstance(limit, float) else min(windows, limit)


class StreamDataModule(pl.LightningDataModule):
    """Serves each split as in-order windows of this rank's contiguous rows."""

    # What one item of a series is, in messages to the user ("characters" for text).
    item_name = "items"
    # The spacing of consecutive items of a float series on the time axis of plots, and that axis' name.
    time_step = 1.0
    time_label = "t from the start of the validation series"
    # Where a dataset supplies its own targets, how many steps after its input each one belongs.
    targets_lead = 0
    # How the held-out part is forecast and scored against the classical methods (data=series); None: not.
    forecasting: "Forecasting | None" = None
    # Leading windows of each evaluation that only warm up the state when data.eval_burn_in is null.
    default_eval_burn_in = 0
    # Rows per process when data.batch_size is null, halved until the shortest split fills them.
    default_batch_size = 64

    def __init__(self, batch_size: int | None, seq_length: int, eval_burn_in: int | None) -> None:
        """``batch_size=None``: :attr:`default_batch_size` rows where every split gives them a window, else
        the largest half of it that does. ``eval_burn_in=None``: :attr:`default_eval_burn_in` where the
        evaluation splits allow it. No other argument of a dataset has a default in Python: its
        conf/data/<name>.yaml is the one home of each."""
        super().__init__()
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.eval_burn_in = eval_burn_in
        self.splits: dict[str, torch.Tensor] = {}  # split -> its input series
        self.targets: dict[str, torch.Tensor] = {}  # split -> aligned targets, where not the next item

    # -- what a dataset implements -------------------------------------------------------------
    def load_splits(self) -> Mapping[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """Return ``{"train": ..., "val": ..., optionally "test": ...}`` as 1-D token ids (any integer
        dtype, served as int64) or float series of shape ``(N, features)``; the model learns to predict
        each split's next item.

        A split may instead be a pair ``(inputs, targets)`` of equal length, ``targets[i]`` being what
        the model should output after reading ``inputs[i]`` (e.g. data=echo: the input ``delay`` steps ago).
        """
        raise NotImplementedError

    @property
    def spec(self) -> DataSpec:
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            for split, series in self.load_splits().items():
                if isinstance(series, tuple):
                    self.splits[split], self.targets[split] = series
                else:
                    self.splits[split] = series

    def aligned(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, targets)`` of ``split``, aligned: ``targets[i]`` is the output wanted after
        ``inputs[i]`` (the next item, unless the dataset supplies its own targets)."""
        self.setup()
        series = self.splits[split]
        if split in self.targets:
            return series, self.targets[split]
        return series[:-1], series[1:]

    def split_name(self, split: str) -> str:
        """How messages name ``split``."""
        return f"{split} split"

    def val_times(self, count: int) -> Sequence[float] | np.ndarray:
        """The time axis of the first ``count`` items of the validation split, for figures."""
        return [self.time_step * i for i in range(count)]

    def in_data_units(self, values: torch.Tensor, columns: str) -> torch.Tensor:
        """``values`` of the model's ``columns`` ("inputs" or "targets") as the data had them (a dataset
        that scales its series undoes it here)."""
        return values

    def fit_batch_size(self, world_size: int) -> int:
        """Settle a null ``batch_size`` for ``world_size`` processes (one log line when it is lowered) and
        return it; a number is kept, and a split too short for it is refused where its stream is built."""
        if self.batch_size is None:
            self.setup()
            shortest = min(len(self.aligned(split)[0]) for split in self.splits)
            rows = self.default_batch_size
            while rows > 1 and min_items(world_size * rows, self.seq_length) > shortest:
                rows //= 2
            if rows < self.default_batch_size:
                rank_zero_info(
                    f"data.batch_size: {rows} rather than {self.default_batch_size} rows per process, since "
                    f"the shortest split ({shortest:,} {self.item_name}) is too short for "
                    f"{world_size * rows * 2} rows of {self.seq_length + 1}; set data.batch_size to choose"
                )
            self.batch_size = rows
        return self.batch_size

    def _window_stream(
        self, split: str, world_size: int = 1, rank: int = 0, device: torch.device | None = None
    ) -> WindowStream:
        self.setup()
        return WindowStream(
            self.splits[split],
            self.fit_batch_size(world_size),
            self.seq_length,
            world_size,
            rank,
            name=self.split_name(split),
            unit=self.item_name,
            device=device,
            targets=self.targets.get(split),
        )

    def stream(self, split: str) -> WindowStream:
        """This rank's windows of ``split``, on the trainer's device (CPU without a trainer)."""
        trainer = self.trainer
        if trainer is None:
            return self._window_stream(split)
        return self._window_stream(
            split, trainer.world_size, trainer.global_rank, trainer.strategy.root_device
        )

    def _loader(self, split: str) -> DataLoader[Batch]:
        return WindowLoader(self.stream(split))

    def train_dataloader(self) -> DataLoader[Batch]:
        epoch_loop = self.trainer.fit_loop.epoch_loop if self.trainer else None
        # Windows the current epoch has started: where a checkpoint taken now should resume.
        position = (lambda: epoch_loop.batch_progress.current.ready) if epoch_loop else (lambda: 0)
        return ResumableWindowLoader(self.stream("train"), position)

    def val_dataloader(self) -> DataLoader[Batch]:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader[Batch]:
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

    def blind_guess_loss(self) -> float:
        """The training loss of a model that learned nothing (a uniform guess over the vocabulary, or
        predicting zero): the scale against which a diverging loss is judged."""
        if self.spec.tokens:
            return math.log(self.spec.output_size)
        _, targets = self.aligned("train")
        return float(targets.double().square().mean())

    @property
    def has_test(self) -> bool:
        self.setup()
        return "test" in self.splits


class WindowLoader(DataLoader[Batch]):
    """A split's windows as they are, in order.

    Windows are ready-made batches: batch_size=None serves them as they are, and worker processes would
    buy nothing for a slice of a tensor. The loader has a generator of its own: starting an epoch or a
    validation then draws nothing from the global one, so an extra validation (the one a signal asks
    for) leaves training's random stream (dropout) as it was, and a resumed run stays exact.
    """

    dataset: WindowStream

    def __init__(self, stream: WindowStream) -> None:
        super().__init__(stream, batch_size=None, shuffle=False, num_workers=0, generator=torch.Generator())


class ResumableWindowLoader(WindowLoader):
    """A split's windows in order, able to start an epoch at window k.

    Lightning stores ``state_dict()`` in every checkpoint and hands it back to ``load_state_dict`` before
    a resumed run draws its first batch, so a run resumed mid-epoch trains on exactly the windows the
    interrupted one had left (contract 1 keeps their order fixed).
    """

    def __init__(self, stream: WindowStream, position: Callable[[], int]) -> None:
        super().__init__(stream)
        self._position = position
        self._start = 0

    def state_dict(self) -> dict[str, int]:
        return {"next_window": self._position()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # A checkpoint taken after an epoch's last window resumes with the next epoch's first.
        self._start = state["next_window"] % len(self.dataset)

    # torch names its own iterator class as the return type; Lightning only iterates over what comes back.
    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        start, self._start = self._start, 0
        windows = super().__iter__()
        return itertools.islice(windows, start, None) if start else windows
