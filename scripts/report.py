"""Compare the runs of a sweep: `python scripts/report.py outputs/multiruns/DATE/TIME` (see README.md)."""

from seqexp.report import main

if __name__ == "__main__":
    main()
