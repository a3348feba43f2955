"""Contract 1 (docs/design.md §3): a split becomes parallel contiguous rows, served as windows in order.

    series (N items)  ->  rows (world_size * batch_size, R)  ->  this rank's rows (batch_size, R)
    window k:  x = rows[:, k*T : (k+1)*T],  y = rows[:, k*T+1 : (k+1)*T+1]

A dataset whose target is not the next item (``data=echo``) supplies an aligned target series as well:
targets[i] is what the model should output after reading series[i]. Both are cut into rows the same
way and windows are taken at the same offsets, y = target_rows[:, k*T : (k+1)*T]; the number of rows
and windows, the ranks' shards and the carry are exactly those of the next-step layout.

Row j of window k continues row j of window k-1, so the hidden state left by one window is the right
initial state for the next (truncated BPTT). Every rank gets the same number of equal-shaped windows,
which keeps DDP ranks in lock-step.

Token series may come as compact integers (uint8/16/32, e.g. views of a memory-mapped token file): they
stay compact in the rows and each window becomes int64 only as it is served.
"""

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

from seqexp.errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]  # a window of every row: inputs and their targets


def rank_rows(series: torch.Tensor, batch_size: int, world_size: int = 1, rank: int = 0) -> torch.Tensor:
    """This rank's ``batch_size`` contiguous rows of ``series`` (shape ``(batch_size, R, *item)``).

    The series is cut into ``world_size * batch_size`` rows of ``R = N // rows`` items (the tail is
    dropped); rank ``r`` owns rows ``[r * batch_size, (r + 1) * batch_size)``.
    """
    n_rows = world_size * batch_size
    row_length = len(series) // n_rows
    rows = series[: n_rows * row_length].reshape(n_rows, row_length, *series.shape[1:])
    return rows[rank * batch_size : (rank + 1) * batch_size]


def windows_per_row(n_items: int, rows: int, seq_length: int) -> int:
    """How many windows of ``seq_length`` (plus the one-step-ahead target) fit in each row."""
    return max(n_items // rows - 1, 0) // seq_length


def min_items(rows: int, seq_length: int) -> int:
    """The shortest series that yields one window on each of ``rows`` rows."""
    return rows * (seq_length + 1)


def fits_on(device: torch.device | None, rows: torch.Tensor) -> bool:
    """Whether ``rows`` can live on ``device`` for the whole run: on a GPU, in half its free memory."""
    if device is None or torch.device(device).type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return rows.nbytes <= free // 2


class WindowStream(Dataset[Batch]):
    """Windows of a rank's rows, in order; each item is already a batch ``(x, y)``.

    Float and int64 items are views into the rows, so serving them costs no copy; use with
    ``batch_size=None`` and no shuffling (StreamDataModule's loaders do).
    """

    def __init__(
        self,
        series: torch.Tensor,
        batch_size: int,
        seq_length: int,
        world_size: int = 1,
        rank: int = 0,
        name: str = "series",
        unit: str = "items",
        device: torch.device | None = None,
        targets: torch.Tensor | None = None,
    ) -> None:
        rows = world_size * batch_size
        if targets is not None and len(targets) != len(series):
            raise ValueError(f"the {name} has {len(series)} inputs but {len(targets)} targets")
        if windows_per_row(len(series), rows, seq_length) < 1:
            raise ConfigError(
                f"the {name} has {len(series)} {unit}, too short for one window of seq_length={seq_length} "
                f"on {rows} rows (batch_size={batch_size} x {world_size} process(es)); it needs at least "
                f"{min_items(rows, seq_length)} {unit}: use more data or a smaller batch_size/seq_length"
            )
        # Only this rank's rows go to its device, once, as compact as they came: each window is then a
        # view there, with no host-to-device copy per step. Rows too large for a GPU stay on the host
        # (memory-mapped for a token file) and each window is copied over as it is served.
        self.device = device
        self.rows = self._placed(rank_rows(series, batch_size, world_size, rank))
        # None: the target is the next item of the series itself.
        self.target_rows = (
            None if targets is None else self._placed(rank_rows(targets, batch_size, world_size, rank))
        )
        self.seq_length = seq_length
        self.n_windows = windows_per_row(len(series), rows, seq_length)

    def __len__(self) -> int:
        return self.n_windows

    def __iter__(self) -> Iterator[Batch]:
        # What iterating by __getitem__ already did, stated for type checkers, which do not model that.
        return (self[k] for k in range(self.n_windows))

    def __getitem__(self, k: int) -> Batch:
        if not 0 <= k < self.n_windows:
            raise IndexError(k)
        start = k * self.seq_length
        if self.target_rows is not None:
            x = self._served(self.rows[:, start : start + self.seq_length])
            return x, self._served(self.target_rows[:, start : start + self.seq_length])
        window = self._served(self.rows[:, start : start + self.seq_length + 1])
        return window[:, :-1], window[:, 1:]

    def _placed(self, rows: torch.Tensor) -> torch.Tensor:
        return rows.to(self.device) if fits_on(self.device, rows) else rows

    def _served(self, window: torch.Tensor) -> torch.Tensor:
        window = window.to(self.device)  # a no-op where the rows already are
        return window if window.is_floating_point() else window.long()  # compact ids become int64 here
