"""The format of a run's metrics.csv: one row per logged point, ``step,name,value,time`` (Unix seconds),
in the order they were logged. Read here without torch or Lightning, so that scripts/report.py starts fast;
written by seqexp/trackers/files.py."""

import csv
from pathlib import Path

COLUMNS = ("step", "name", "value", "time")


def read_rows(path: Path) -> list[tuple[int, str, float, float]]:
    """``(step, name, value, time)`` of every complete row of a metrics file (none if there is no file);
    a last line cut short by a kill is left out."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    if lines and lines[-1] != "":  # the last row is cut short: no line end was written
        lines = lines[:-1]
    rows = []
    for fields in csv.reader(lines[1:]):
        if len(fields) != len(COLUMNS):
            continue
        try:
            rows.append((int(fields[0]), fields[1], float(fields[2]), float(fields[3])))
        except ValueError:
            continue
    return rows
