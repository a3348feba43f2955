"""Reading runs back and comparing them: runs.py reads, leaderboard.py ranks, plots.py draws, write.py
writes the report into the folder (``scripts/report.py`` is the command)."""
