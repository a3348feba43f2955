"""The report of a folder of runs: a leaderboard (leaderboard.md, leaderboard.csv, and on the console)
and the charts, written into the folder. runs.py finds and reads the runs, leaderboard.py ranks and
formats them, plots.py draws the charts; this module checks the folder, says what it skipped and writes
the files.
"""

import sys
from pathlib import Path

from seqexp.errors import ConfigError
from seqexp.report.leaderboard import build_leaderboard
from seqexp.report.plots import write_plots
from seqexp.report.runs import find_runs
from seqexp.run_layout import SAVED_CONFIG

MARKDOWN = "leaderboard.md"
CSV = "leaderboard.csv"


def write_report(directory: Path) -> list[Path]:
    """Write the leaderboard and the charts of the runs under ``directory`` into it; return the files.

    Folders it skips and runs it reports with damaged files get one line each on stderr.
    """
    if not directory.is_dir():
        problem = "is not a folder" if directory.exists() else "does not exist"
        raise ConfigError(f"{directory} {problem}: give a multirun folder or a folder of runs")
    runs, skipped, warnings = find_runs(directory)
    for skip in skipped:
        print(f"skipped {skip.path}: {skip.reason}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not runs:
        raise ConfigError(
            f"no runs to report under {directory}: no folder below it has a readable {SAVED_CONFIG}"
        )

    board = build_leaderboard(runs)
    # The files first: a reader of the console that goes away (report.py DIR | head -1) must not cost them.
    files = [directory / MARKDOWN, directory / CSV]
    files[0].write_text(board.to_markdown())
    files[1].write_text(board.to_csv())
    files += write_plots(runs, board, directory)
    print(board.to_text())
    skipped_note = f" ({len(skipped)} folder(s) skipped)" if skipped else ""
    print(f"\n{len(runs)} run(s){skipped_note}; wrote {', '.join(f.name for f in files)} in {directory}")
    return files
