"""Finding the runs under a folder and reading what each one left behind.

A run is a folder with a ``.hydra/`` subfolder or a ``status.json`` (Hydra writes the first for every
run and every multirun job before the task starts; the train task writes the second). From it we read
the composed config (``.hydra/config.yaml``), the command-line overrides (``.hydra/overrides.yaml``),
the status file and the run's scalars: from its ``metrics.csv``, which every run writes whatever loggers
it has (seqexp/trackers/files.py), or, for runs from before that file, from every TensorBoard event file
below it, with TensorBoard's own reader. Event files are checked to the end either way, as that reader
stops silently at the first damaged record.
"""

import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

from seqexp.app.run_status import RunStatus, read_status
from seqexp.errors import first_line
from seqexp.run_layout import (
    BASELINES_FILE,
    EVENT_FILES,
    GRAD_FLOW_FILE,
    HYDRA_DIR,
    METRICS_FILE,
    OVERRIDES,
    SAVED_CONFIG,
    STATUS_FILE,
    TENSORBOARD_DIR,
)
from seqexp.trackers.metrics_csv import read_rows


@dataclass(frozen=True)
class Point:
    step: int
    value: float
    wall_time: float  # Unix time at which it was logged


@dataclass(frozen=True)
class Damage:
    """The first record of an event file that fails TensorBoard's checks: the reader stops there."""

    file: str  # relative to the run's folder
    offset: int  # where the failing record starts
    size: int  # of the file
    cut_short: bool  # the file ends inside that record (a kill mid-write), rather than bytes overwritten

    def __str__(self) -> str:
        if self.cut_short:
            return (
                f"{self.file} ends inside a record at byte {self.offset} of {self.size} (cut short "
                f"mid-write): its last events are lost"
            )
        return (
            f"{self.file} is damaged at byte {self.offset} of {self.size} (a record fails its checksum): "
            f"the events from there on are lost"
        )


@dataclass
class Run:
    name: str  # the path relative to the folder the runs were found in
    config: DictConfig
    overrides: list[str]
    status: RunStatus | None
    scalars: dict[str, list[Point]] = field(default_factory=dict)  # tag -> points in step order
    events_error: str | None = None  # why the events could not be read
    # Event files the reader stopped short of their end in; the scalars then hold only what came before.
    damage: list[Damage] = field(default_factory=list)
    # The last gradient-flow curve (seqexp/callbacks/grad_flow.py): norms by lag, seq_length, step.
    grad_flow: dict[str, Any] | None = None
    # A forecast series' classical baselines, scored on the run's origins (callbacks/forecast_score.py).
    baselines: dict[str, Any] | None = None

    def best(self, tag: str) -> tuple[int, float] | None:
        """``(step, value)`` of the smallest finite value of ``tag``, or None if there is none."""
        finite = [p for p in self.scalars.get(tag, []) if math.isfinite(p.value)]
        if not finite:
            return None
        point = min(finite, key=lambda p: p.value)
        return point.step, point.value

    def last(self, tag: str) -> float | None:
        points = self.scalars.get(tag)
        return points[-1].value if points else None

    def events_span(self) -> float | None:
        """Seconds from the first to the last event: model set-up to final metrics, start-up excluded."""
        times = [p.wall_time for points in self.scalars.values() for p in points]
        return max(times) - min(times) if times else None

    @property
    def events_fall_short(self) -> str | None:
        """Why the events cannot be the run's whole record, or None: the best val/loss the run itself
        reported in status.json (its objective) is lower than any val/loss its events still hold, so
        points were lost (a file cut short, damaged bytes). The report then uses the objective."""
        objective = self.status.objective if self.status else None
        if objective is None:
            return None
        best = self.best("val/loss")
        # (A run without a best checkpoint reports its final val/loss, which may lie above the best.)
        if best is not None and best[1] <= objective * (1 + 1e-5) + 1e-12:
            return None
        found = f"{best[1]:.6g}" if best else "none"
        return (
            f"its events are incomplete: their best val/loss is {found}, {STATUS_FILE} says {objective:.6g} "
            f"(shown)"
        )

    def value_at(self, tag: str, step: int) -> float | None:
        """The value of ``tag`` logged at ``step`` (e.g. val/bpc where val/loss was best)."""
        return next((p.value for p in self.scalars.get(tag, []) if p.step == step), None)

    @property
    def events_damage(self) -> list[Damage]:
        """The damage that leaves the events short of the run's whole record. A live run's last record
        may be half flushed by its writer: that alone is no damage."""
        if self.events_error:
            return []  # nothing was read: that says more than where the reader stopped
        live = self._recorded_state == "running"
        return [damage for damage in self.damage if not (live and damage.cut_short)]

    @property
    def state(self) -> str:
        """ok | diverged | interrupted | failed | not started | killed | running | no events | unreadable
        events | unknown; followed by ", damaged events" or ", events cut short" (alone instead of "no
        events") when the reader stopped before the end of an event file, whatever status.json says: the
        metrics are then only those logged before that point."""
        state = self._recorded_state
        damage = self.events_damage
        if not damage:
            return state
        flag = "events cut short" if all(d.cut_short for d in damage) else "damaged events"
        return flag if state == "no events" else f"{state}, {flag}"

    @property
    def _recorded_state(self) -> str:
        status = self.status.status if self.status else None
        if status in ("failed", "not started"):  # a job a stopped sweep never began has no events
            return status
        if self.status is not None and status == "running" and self.status.process_gone():
            return "killed"
        if status == "running":
            return "running"
        if self.events_error:
            return "unreadable events"
        if not self.scalars:
            return "no events"
        if status is not None:
            return status
        # No status file (a run from before status files, or from another entry point): the final
        # hyperparameter metrics are the train task's last words.
        return "ok" if "hp/best_val_loss" in self.scalars else "unknown"

    @property
    def note(self) -> str:
        """Why a run is not plainly ok, in a few words: its status's reason, then its events' damage."""
        parts = [self._status_note, *map(str, self.events_damage), self.events_fall_short]
        return "; ".join(part for part in parts if part)

    @property
    def _status_note(self) -> str:
        state = self._recorded_state
        if self.status and self.status.status == "failed":
            return self.status.error or ""
        if state == "killed":
            return "killed (its process is gone): resume=<its folder> continues it from its last checkpoint"
        if state == "interrupted":
            assert self.status is not None, "only a status file says a run was interrupted"
            return f"signal {self.status.signal}: resume=<its folder> continues it from its last checkpoint"
        if state == "not started":
            assert self.status is not None, "only a status file says a job did not start"
            return f"its sweep was stopped (signal {self.status.signal}): resume=<sweep folder> runs it"
        if self.events_error:
            return self.events_error
        if state == "diverged":
            return "the validation loss is not finite"
        if state == "unknown":
            return f"no {STATUS_FILE} and no final metrics"
        return ""


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


def find_runs(directory: Path) -> tuple[list[Run], list[Skipped], list[str]]:
    """The runs under ``directory`` (itself included), in natural order of their paths.

    Returns ``(runs, skipped, warnings)``: folders that look like runs but have no readable config,
    and event files outside any run, are skipped; problems that leave a run in the report (damaged
    events, status or overrides file) are warnings.
    """
    markers = [*directory.rglob(HYDRA_DIR), *directory.rglob(STATUS_FILE)]
    folders = sorted({marker.parent for marker in markers}, key=lambda p: _natural_key(p, directory))
    runs: list[Run] = []
    skipped = [
        Skipped(events_dir, f"TensorBoard events outside any run folder (one with {SAVED_CONFIG})")
        for events_dir in sorted({path.parent for path in directory.rglob(EVENT_FILES)})
        if not any(events_dir.is_relative_to(folder) for folder in folders)
    ]
    warnings: list[str] = []
    for folder in folders:
        name = folder.relative_to(directory).as_posix() if folder != directory else folder.name
        try:
            config = _load_config(folder / SAVED_CONFIG)
        except ValueError as error:
            skipped.append(Skipped(folder, str(error)))
            continue
        try:
            status = read_status(folder)
        except ValueError as error:
            warnings.append(f"{name}: {error}; its state is judged from its events")
            status = None
        try:
            overrides = _read_overrides(folder)
        except ValueError as error:
            warnings.append(f"{name}: {error}; listed without its overrides")
            overrides = []
        run = Run(name, config, overrides, status)
        run.scalars, run.events_error = read_record(folder)
        run.damage = find_damage(folder)
        run.grad_flow = _read_grad_flow(folder)
        run.baselines = _read_baselines(folder)
        problems = [*map(str, run.events_damage), *filter(None, [run.events_fall_short])]
        if run.events_error:
            warnings.append(f"{name}: {run.events_error}; listed without metrics")
        elif problems:
            warnings.append(f"{name}: {'; '.join(problems)}")
        runs.append(run)
    return runs, skipped, warnings


def read_record(folder: Path) -> tuple[dict[str, list[Point]], str | None]:
    """The run's scalars and why none could be read: its metrics file where it has one, else its events."""
    path = folder / METRICS_FILE
    if not path.is_file():
        return read_scalars(folder)
    scalars: dict[str, list[Point]] = {}
    for step, name, value, wall_time in read_rows(path):
        scalars.setdefault(name, []).append(Point(step, value, wall_time))
    return {name: sorted(points, key=lambda p: p.step) for name, points in scalars.items()}, None


def read_scalars(folder: Path) -> tuple[dict[str, list[Point]], str | None]:
    """Every scalar series in the event files under ``folder``, and why none could be read, if so.

    A file cut short (a job killed mid-write) is read up to the damage, as TensorBoard itself does; a
    folder of non-empty event files that yields no event at all is reported as unreadable.
    """
    directories = sorted({path.parent for path in folder.rglob(EVENT_FILES)})
    scalars: dict[str, list[Point]] = {}
    for events_dir in directories:
        accumulator = EventAccumulator(str(events_dir), size_guidance={SCALARS: 0})  # 0: keep every point
        try:
            accumulator.Reload()
            accumulator.FirstEventTimestamp()  # ValueError when nothing at all could be read
        except Exception as error:  # the reader's errors are many and undocumented; all mean unreadable
            if any(path.stat().st_size > 0 for path in events_dir.glob(EVENT_FILES)):
                where = events_dir.relative_to(folder).as_posix()
                return {}, f"events in {where}/ are unreadable ({type(error).__name__}: {error})"
            continue  # empty files: the writer was opened, nothing was logged yet
        for tag in accumulator.Tags()["scalars"]:
            points = [Point(e.step, e.value, e.wall_time) for e in accumulator.Scalars(tag)]
            scalars[tag] = sorted(scalars.get(tag, []) + points, key=lambda p: p.step)
    return scalars, None


def find_damage(folder: Path) -> list[Damage]:
    """The event files under ``folder`` that TensorBoard's reader stops short of the end of.

    The reader stops at the first record that is cut short or fails its checksum and says so only in a
    debug log, so a damaged file reads like a shorter clean one. This walks the same record framing
    (length, its masked CRC-32C, data, its masked CRC-32C) with the same checks to find that point.
    """
    found = []
    for path in sorted(folder.rglob(EVENT_FILES)):
        bad = _first_bad_record(path)
        if bad is not None:
            offset, cut_short = bad
            found.append(Damage(path.relative_to(folder).as_posix(), offset, path.stat().st_size, cut_short))
    return found


_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_HEADER_SIZE = _LENGTH.size + _CRC.size


def _first_bad_record(path: Path) -> tuple[int, bool] | None:
    """``(offset, cut_short)`` of the first record of ``path`` that fails the reader's checks, or None
    when every record passes, up to the end of the file."""
    with path.open("rb") as file:
        offset = 0
        while header := file.read(_HEADER_SIZE):
            end = offset + _HEADER_SIZE  # where the record ends, as far as its header can be trusted
            if (
                len(header) == _HEADER_SIZE
                and masked_crc32c(header[: _LENGTH.size]) == _CRC.unpack_from(header, _LENGTH.size)[0]
            ):
                length = _LENGTH.unpack_from(header)[0]
                end += length + _CRC.size
                body = file.read(length + _CRC.size)
                if (
                    len(body) == length + _CRC.size
                    and masked_crc32c(body[:length]) == _CRC.unpack_from(body, length)[0]
                ):
                    offset = end
                    continue
            # Cut short: the file ends inside this record. A crash of the machine, rather than of the
            # process, can leave the file's last blocks allocated but never written: zeros to the end.
            file.seek(offset)
            written = offset + len(file.read().rstrip(b"\0"))
            return offset, written < end
    return None


def _read_grad_flow(folder: Path) -> dict[str, Any] | None:
    """The curve the gradient-flow callback left in the run's folder, if it left one."""
    # In the run's folder; runs from before other loggers kept it beside their TensorBoard events.
    path = next(
        (p for p in (folder / GRAD_FLOW_FILE, folder / TENSORBOARD_DIR / GRAD_FLOW_FILE) if p.is_file()), None
    )
    try:
        curve = json.loads(path.read_text()) if path else None
    except (OSError, ValueError):  # cut short by a kill: the run just has no curve
        return None
    return curve if isinstance(curve, dict) and isinstance(curve.get("norms"), list) else None


def _read_baselines(folder: Path) -> dict[str, Any] | None:
    """The baselines' scores the forecast callback left in the run's folder, if it left them."""
    try:
        record = json.loads((folder / BASELINES_FILE).read_text())
    except (OSError, ValueError):  # none (not a forecast series), or cut short by a kill
        return None
    return record if isinstance(record, dict) and isinstance(record.get("scores"), dict) else None


def _load_config(path: Path) -> DictConfig:
    if not path.is_file():
        raise ValueError(f"no {path.parent.name}/{path.name}")
    try:
        config = OmegaConf.load(path)
    except Exception as error:  # YAML and OmegaConf errors alike
        raise ValueError(f"{path.parent.name}/{path.name} is unreadable: {first_line(error)}") from None
    if not isinstance(config, DictConfig):
        raise ValueError(f"{path.parent.name}/{path.name} is not a mapping")
    return config


def _read_overrides(folder: Path) -> list[str]:
    path = folder / OVERRIDES
    if not path.is_file():
        return []  # a run started without overrides may have none
    try:
        overrides = OmegaConf.load(path)
    except Exception as error:  # YAML and OmegaConf errors alike
        raise ValueError(f"{OVERRIDES} is unreadable: {first_line(error)}") from None
    if not isinstance(overrides, ListConfig):
        raise ValueError(f"{OVERRIDES} is not a list")
    return [str(override) for override in overrides]


def _natural_key(path: Path, root: Path) -> list[tuple[int, int | str]]:
    """Sort key that puts job 10 after job 9: digit runs compare as numbers."""
    parts = re.split(r"(\d+)", path.relative_to(root).as_posix())
    return [(0, int(part)) if part.isdigit() else (1, part) for part in parts if part]
