"""The run's own record in plain files of its folder, needing no tracker to read.

:class:`MetricsFile` is ``metrics.csv``: one row per logged point (``step,name,value,time``), appended and
flushed as it is logged, so a killed run keeps every point up to the kill. Every run writes it, whatever
loggers it has (tasks/train.py adds it), and scripts/report.py reads it. :class:`FileTracker`
(``logger=csv``) adds the figures as PNG files, the text samples as text files and ``hparams.yaml``, for
a run that should need nothing but its folder.
"""

import csv
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from matplotlib.image import imsave
from omegaconf import OmegaConf
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from seqexp.run_layout import METRICS_FILE
from seqexp.trackers.metrics_csv import COLUMNS, read_rows


class MetricsFile(Logger):
    """Appends every scalar the run logs to ``<save_dir>/metrics.csv``."""

    def __init__(self, save_dir: str) -> None:
        super().__init__()
        self._save_dir = save_dir
        self._file: TextIO | None = None

    @property
    def name(self) -> str:
        return "files"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def path(self) -> Path:
        return Path(self._save_dir) / METRICS_FILE

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = f"{time.time():.3f}"
        rows = [(step or 0, name, repr(float(value)), now) for name, value in metrics.items()]
        self._write(rows)

    @rank_zero_only
    def log_hyperparams(
        self, params: Any, metrics: Mapping[str, float] | None = None, step: int | None = None
    ) -> None:
        if metrics:  # the knobs are the run's .hydra/config.yaml already
            self.log_metrics(metrics, step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, rows: Sequence[tuple[object, ...]]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.is_file() or self.path.stat().st_size == 0
            self._file = self.path.open("a", newline="", encoding="utf-8")
            if new:
                csv.writer(self._file).writerow(COLUMNS)
        csv.writer(self._file).writerows(rows)
        self._file.flush()  # a kill loses nothing logged so far

    def last_steps(self) -> dict[str, int]:
        """The last step each name was logged at, by this run's earlier attempts."""
        last: dict[str, int] = {}
        for step, name, _, _ in read_rows(self.path):
            last[name] = max(step, last.get(name, step))
        return last

    def continue_at(self, step: int | None, logged: Mapping[str, int]) -> bool:
        """Drop the rows logged from ``step`` on (all of them for None), as TensorBoard's readers drop the
        events after a restart marker; the file is replaced whole, so a kill now leaves one or the other."""
        if not self.path.is_file():
            return False
        rows = read_rows(self.path)
        kept = [row for row in rows if step is not None and row[0] < step]
        if self._file is not None:
            self._file.close()
            self._file = None
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(COLUMNS)
            writer.writerows((s, name, repr(value), f"{when:.3f}") for s, name, value, when in kept)
        os.replace(partial, self.path)
        return bool(rows)


class FileTracker(MetricsFile):
    """``logger=csv``: metrics.csv, and the figures (``figures/<tag>/step-<step>.png``), the text samples
    (``samples/<tag>/step-<step>.txt``) and the hyperparameters with the final metrics (hparams.yaml)."""

    @rank_zero_only
    def show_figure(self, tag: str, image: np.ndarray, step: int) -> None:
        imsave(self._media_file("figures", tag, step, ".png"), image)

    @rank_zero_only
    def show_text(self, tag: str, text: str, step: int) -> None:
        self._media_file("samples", tag, step, ".txt").write_text(text, encoding="utf-8")

    @rank_zero_only
    def log_hyperparams(
        self, params: Any, metrics: Mapping[str, float] | None = None, step: int | None = None
    ) -> None:
        super().log_hyperparams(params, metrics, step)
        record = {"hparams": dict(params), "metrics": {k: _plain(v) for k, v in (metrics or {}).items()}}
        OmegaConf.save(OmegaConf.create(record), Path(self._save_dir) / "hparams.yaml")

    def _media_file(self, kind: str, tag: str, step: int, suffix: str) -> Path:
        folder = Path(self._save_dir, kind, *tag.split("/"))
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"step-{step:07d}{suffix}"


def _plain(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else str(value)
