"""The report's charts: validation-loss curves of all runs, by step and (the best run of each cell, or
every run where all are of one cell) by wall-clock minutes, and best validation loss against model size
and against throughput. Bare matplotlib Figures (no pyplot): no display and no global state needed.
"""

import math
from pathlib import Path
from typing import NamedTuple

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from seqexp.report.leaderboard import LOSS, Leaderboard, Row
from seqexp.report.runs import Run

CURVES = "val_loss.png"
AGAINST_PARAMETERS = "best_val_loss_vs_parameters.png"
AGAINST_THROUGHPUT = "best_val_loss_vs_throughput.png"
GRAD_FLOW = "grad_flow.png"
AGAINST_TIME = "val_loss_vs_time.png"


def write_plots(runs: list[Run], board: Leaderboard, directory: Path) -> list[Path]:
    """Write the charts into ``directory`` (the gradient-flow overlay where a run measured it); return
    their paths."""
    labels = {row.run: board.label(row) for row in board.rows}
    paths = [
        directory / CURVES,
        directory / AGAINST_TIME,
        directory / AGAINST_PARAMETERS,
        directory / AGAINST_THROUGHPUT,
    ]
    _curves(runs, labels, paths[0])
    _against_time(runs, board, paths[1])
    _scatter(board.rows, "parameters", "parameters", paths[2])
    _scatter(board.rows, "tokens_per_s", "training tokens per second", paths[3])
    if any(run.grad_flow for run in runs):
        paths.append(directory / GRAD_FLOW)
        _grad_flow(runs, board, paths[-1])
    return paths


def _curves(runs: list[Run], labels: dict[str, str], path: Path) -> None:
    figure = Figure(figsize=(9, 5))
    axes = figure.subplots()
    plotted = [run for run in runs if any(math.isfinite(p.value) for p in run.scalars.get(LOSS, []))]
    for run in plotted:
        points = run.scalars[LOSS]
        axes.plot([p.step for p in points], [p.value for p in points], marker=".", label=labels[run.name])
    if plotted:
        axes.set_yscale("log")  # losses of a sweep span orders of magnitude
    _finish_loss_curves(figure, axes, bool(plotted), "training step", f"{LOSS} of every run", path)


class TimeCurve(NamedTuple):
    row: Row
    minutes: list[float]  # since the run's first event
    losses: list[float]


def loss_against_time(runs: list[Run], board: Leaderboard) -> dict[str | None, TimeCurve]:
    """For each cell, its run with the best val/loss and that run's finite val/loss against the minutes
    since the run's first event (its model set-up), keyed by the cell. Where every run is of one cell (a
    search over one cell's recipe), every run's curve instead, keyed by the run. A resumed run's minutes
    include its time stopped."""
    by_name = {run.name: run for run in runs}
    one_cell = _of_one_cell(runs, board)
    curves: dict[str | None, TimeCurve] = {}
    for row in board.rows:  # best first, so the first row of a cell is its best
        run = by_name.get(row.run)
        key = row.run if one_cell else row.cell
        # A baseline is no run; a run whose result is only in status.json (debug=fast logs no scalars) has
        # no curve.
        if row.best_loss is None or key in curves or run is None or not run.scalars.get(LOSS):
            continue
        start = min(p.wall_time for points in run.scalars.values() for p in points)
        points = [p for p in run.scalars[LOSS] if math.isfinite(p.value)]
        curves[key] = TimeCurve(row, [(p.wall_time - start) / 60 for p in points], [p.value for p in points])
    return curves


def _of_one_cell(runs: list[Run], board: Leaderboard) -> bool:
    """Whether every run reported is of one cell: a search over that cell's recipe."""
    names = {run.name for run in runs}
    return len({row.cell for row in board.rows if row.run in names}) == 1


def _against_time(runs: list[Run], board: Leaderboard, path: Path) -> None:
    """What a budget of wall-clock time buys with each cell, or with each recipe of one cell
    (:func:`loss_against_time`)."""
    figure = Figure(figsize=(9, 5))
    axes = figure.subplots()
    curves = loss_against_time(runs, board)
    for curve in curves.values():
        # The run's folder, not its overrides: a search's would make the legend wider than the chart.
        run = curve.row.run if len(curve.row.run) <= 30 else curve.row.run[:29] + "…"
        label = f"{curve.row.cell or 'cell?'} ({run}): best {curve.row.best_loss:.4g}"
        axes.plot(curve.minutes, curve.losses, marker=".", label=label)
    which = "every run" if _of_one_cell(runs, board) else "the best run of each cell"
    xlabel = "wall-clock minutes since the run's model set-up"
    _finish_loss_curves(figure, axes, bool(curves), xlabel, f"{LOSS} against time, {which}", path)


def _finish_loss_curves(
    figure: Figure, axes: Axes, plotted: bool, xlabel: str, title: str, path: Path
) -> None:
    """Legend (or why the chart is empty), labels and title of a chart of val/loss curves; then save it."""
    if plotted:
        # Outside the axes, so that a long search's legend does not hide the curves.
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        _no_data(axes, f"no run logged a finite {LOSS}")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(LOSS)
    axes.set_title(title)
    figure.savefig(path, dpi=100, bbox_inches="tight")


def _grad_flow(runs: list[Run], board: Leaderboard, path: Path) -> None:
    """The runs' last gradient-flow curves, each normalised by its lag-0 norm so that cells whose
    losses differ compare by how far back they reach; the truncation lengths marked."""
    rows = {row.run: row for row in board.rows}
    figure = Figure(figsize=(9, 5))
    axes = figure.subplots()
    seq_lengths = set()
    for run in runs:
        if not run.grad_flow:
            continue
        norms = run.grad_flow["norms"]
        scale = norms[0] if norms and norms[0] > 0 else 1.0
        row = rows[run.name]
        label = f"{board.label(row)} ({row.cell or 'cell?'}): memory {run.grad_flow.get('memory_steps')}"
        axes.semilogy(range(len(norms)), [max(n / scale, 1e-30) for n in norms], label=label)
        seq_lengths.add(run.grad_flow.get("seq_length"))
    for seq_length in sorted(s for s in seq_lengths if s):
        axes.axvline(seq_length, color="gray", linestyle="--")
        axes.annotate(f"seq_length {seq_length}", (seq_length, 1), fontsize="small", rotation=90, va="top")
    axes.axhline(1e-3, color="gray", linestyle=":")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    axes.set_xlabel("lag k (steps before the scored step)")
    axes.set_ylabel("|d loss_T / d e_(T-k)| / |d loss_T / d e_T|")
    axes.set_title("gradient flow through time, last measurement of each run")
    figure.savefig(path, dpi=100, bbox_inches="tight")


def _scatter(rows: list[Row], attribute: str, description: str, path: Path) -> None:
    """One point per run, named by its run folder and coloured by its cell."""
    figure = Figure(figsize=(7, 5))
    axes = figure.subplots()
    measured = [(getattr(row, attribute), row.best_loss, row) for row in rows]
    points = [(x, y, row) for x, y, row in measured if x is not None and x > 0 and y is not None]
    for cell in dict.fromkeys(row.cell for _, _, row in points):
        mine = [(x, y) for x, y, row in points if row.cell == cell]
        axes.scatter([x for x, _ in mine], [y for _, y in mine], label=cell or "unknown cell")
    for x, y, row in points:
        axes.annotate(row.run, (x, y), xytext=(4, 4), textcoords="offset points", fontsize="small")
    if points:
        axes.set_xscale("log")  # model sizes and speeds of a sweep span orders of magnitude
        axes.set_yscale("log")
        axes.legend(fontsize="small", loc="best")
    else:
        _no_data(axes, f"no run has both {description} and a best {LOSS}")
    axes.set_xlabel(description)
    axes.set_ylabel(f"best {LOSS}")
    axes.set_title(f"best {LOSS} against {description}")
    figure.savefig(path, dpi=100, bbox_inches="tight")


def _no_data(axes: Axes, message: str) -> None:
    """A chart with nothing to show still gets written, saying why it is empty."""
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
