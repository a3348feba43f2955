"""Compare the runs of a sweep: `python scripts/report.py outputs/multiruns/DATE/TIME` (see README.md)."""

import argparse
from pathlib import Path

from seqexp.app.cli import quiet_broken_pipe, report_user_errors
from seqexp.report.write import write_report


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="report.py",
        description="Leaderboard (Markdown, CSV) and charts of the runs under DIR, written into DIR.",
    )
    parser.add_argument("directory", metavar="DIR", type=Path, help="a multirun folder or any folder of runs")
    write_report(parser.parse_args(argv).directory)


if __name__ == "__main__":
    with quiet_broken_pipe():
        main()
