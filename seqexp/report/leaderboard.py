"""The leaderboard: one row per run, best first, as Markdown, CSV or console text. Text runs are ranked by
val/bpc at their best val/loss (bits per character compare across tokenizers, a loss per token does not);
forecast series by val/mase at their best val/loss, with a row for each classical baseline of their
``baselines.json`` (scored on the same origins), so that the board says where the model stands; other
runs, and a folder that mixes kinds, by their best val/loss.

What a row says, and where it comes from:
- the overrides that differ between the runs (``.hydra/overrides.yaml``), and the cell (from the
  config) where the runs differ in it and no ``model`` override already tells;
- tokenizer, for text runs: ``char``, or ``bpe 512`` / ``word 1024`` with the vocabulary size asked for
  (from the config; a run from before data.tokenizer existed is ``char``); the tokenizer's overrides
  then get no columns of their own;
- parameters: the ``model/parameters`` scalar the train task logs;
- best and final ``val/loss``, and every other ``val/*`` scalar (``val/bpc`` for text, ``val/mse`` for
  sine, ...) at the step where ``val/loss`` was best, all read from the TensorBoard events;
- memory_steps and forecast_mse: the last ``val/memory_steps`` and ``val/forecast_mse`` (the final
  model's; the diagnostics callbacks log them beside Lightning's metrics, not at the same steps);
- tokens/s: the median over epochs of ``train/tokens_per_s`` (the median, because the first epoch
  also pays for warm-up);
- wall time: from the run's first TensorBoard event to its last, i.e. from model set-up to the final
  metrics (training, validation, test); start-up is left out because in a multirun only the first
  job pays for importing Lightning;
- status (ok / diverged / interrupted / not started / killed / failed / running / no events /
  unreadable events / unknown, with ", damaged events" or ", events cut short" added when an event file
  could not be read to its end: the metrics are then only those logged before the damage) and a note.
Runs without a best validation loss (failed, diverged, no events) come last, in path order.
"""

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, cast

from omegaconf import OmegaConf

from seqexp.report.runs import Run

LOSS = "val/loss"
BPC = "val/bpc"
MASE = "val/mase"
FORECAST_MAE = "val/forecast_mae"
TOKENIZER_KEYS = ("data.tokenizer", "data.vocab_size")
MEMORY = "val/memory_steps"
FORECAST = "val/forecast_mse"
LEGEND = (
    "Ranked by val/mase where every run has it (a forecast series, with the classical methods as baseline "
    "rows scored on the same origins), else by val/bpc where every run has it (text), else by val/loss. "
    "best val/* other than val/loss: "
    "at the step of the best val/loss. memory_steps: the largest lag whose gradient is still 1e-3 of lag "
    "0's, and forecast_mse: the closed-loop forecast's error, both last measured. tokens/s: median over "
    "epochs of train/tokens_per_s. wall time: from the first to the last TensorBoard event of the run."
)
NOTE_WIDTH = 60  # notes are error messages: the full text stays in the CSV


@dataclass
class Row:
    run: str
    status: str
    note: str
    overrides: dict[str, str]  # key -> value as typed, for the keys that differ between runs
    cell: str | None
    tokenizer: str | None  # text runs only
    parameters: int | None
    best_loss: float | None
    final_loss: float | None
    extra: dict[str, float | None] = field(default_factory=dict)  # val/* tag -> value at best val/loss
    memory_steps: int | None = None
    forecast_mse: float | None = None
    tokens_per_s: float | None = None
    wall_time: float | None = None


@dataclass
class Leaderboard:
    rows: list[Row]
    override_keys: list[str]
    extra_tags: list[str]
    show_cell: bool
    diagnostics: list[str] = field(default_factory=list)  # memory_steps, forecast_mse where logged
    show_tokenizer: bool = False

    def header(self) -> list[str]:
        return [
            "run",
            "status",
            *self.override_keys,
            *(["cell"] if self.show_cell else []),
            *(["tokenizer"] if self.show_tokenizer else []),
            "parameters",
            f"best {LOSS}",
            f"final {LOSS}",
            *(f"best {tag}" for tag in self.extra_tags),
            *self.diagnostics,
            "tokens/s",
            "wall time (s)",
            "note",
        ]

    def values(self, row: Row) -> list[object]:
        """The row's cells in header order, as raw values (None where there is nothing)."""
        return [
            row.run,
            row.status,
            *(row.overrides.get(key) for key in self.override_keys),
            *([row.cell] if self.show_cell else []),
            *([row.tokenizer] if self.show_tokenizer else []),
            row.parameters,
            row.best_loss,
            row.final_loss,
            *(row.extra.get(tag) for tag in self.extra_tags),
            *(getattr(row, column) for column in self.diagnostics),
            row.tokens_per_s,
            row.wall_time,
            row.note,
        ]

    def label(self, row: Row) -> str:
        """A short name for charts: the run and its differing overrides."""
        return " ".join([row.run, *(f"{k}={_short(row.overrides[k])}" for k in row.overrides)])

    def to_csv(self) -> str:
        """Full precision, empty cells for missing values."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.header())
        for row in self.rows:
            writer.writerow(["" if v is None else v for v in self.values(row)])
        return out.getvalue()

    def _formatted(self) -> list[list[str]]:
        header = self.header()
        overrides = range(2, 2 + len(self.override_keys))  # their columns follow run and status
        return [
            [
                _short(cast(str, value)) if i in overrides and value is not None else _format(name, value)
                for i, (name, value) in enumerate(zip(header, self.values(row), strict=True))
            ]
            for row in self.rows
        ]

    def to_markdown(self) -> str:
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

        header = self.header()
        lines = [line(header), "|" + "|".join("---" for _ in header) + "|"]
        lines += [line(cells) for cells in self._formatted()]
        return "\n".join(lines) + f"\n\n{LEGEND}\n"

    def to_text(self) -> str:
        """An aligned plain-text table for the console."""
        table = [self.header(), *self._formatted()]
        widths = [max(len(cells[i]) for cells in table) for i in range(len(table[0]))]
        lines = ("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in table)
        return "\n".join(line.rstrip() for line in lines)


def build_leaderboard(runs: list[Run]) -> Leaderboard:
    overrides = {run.name: _parse_overrides(run.overrides) for run in runs}
    keys = list(dict.fromkeys(key for parsed in overrides.values() for key in parsed))
    if len(runs) > 1:  # with a single run there is nothing to compare: show all its overrides
        keys = [key for key in keys if len({parsed.get(key) for parsed in overrides.values()}) > 1]
    logged = {tag for run in runs for tag in run.scalars}
    tokenizers = {run.name: _tokenizer(run) for run in runs}
    show_tokenizer = any(tokenizers.values())
    if show_tokenizer:
        keys = [key for key in keys if key not in TOKENIZER_KEYS]
    extra_tags = sorted({tag for tag in logged if tag.startswith("val/")} - {LOSS, MEMORY, FORECAST})
    diagnostics = [
        column for column, tag in (("memory_steps", MEMORY), ("forecast_mse", FORECAST)) if tag in logged
    ]

    rows = []
    for run in runs:
        best = run.best(LOSS)
        parameters = run.last("model/parameters")
        rates = [p.value for p in run.scalars.get("train/tokens_per_s", []) if math.isfinite(p.value)]
        cell = OmegaConf.select(run.config, "model.cell", default=None)
        memory = run.last(MEMORY)
        rows.append(
            Row(
                run=run.name,
                status=run.state,
                note=run.note,
                overrides={key: overrides[run.name][key] for key in keys if key in overrides[run.name]},
                cell=str(cell).rsplit(".", 1)[-1] if cell else None,
                tokenizer=tokenizers[run.name],
                parameters=int(parameters) if parameters is not None else None,
                best_loss=run.status.objective
                if run.status and run.events_fall_short
                else (best[1] if best else None),
                final_loss=run.last(LOSS),
                extra={tag: run.value_at(tag, best[0]) if best else None for tag in extra_tags},
                memory_steps=int(memory) if memory is not None else None,
                forecast_mse=run.last(FORECAST),
                tokens_per_s=statistics.median(rates) if rates else None,
                wall_time=run.events_span(),
            )
        )
    # Forecast series: the classical methods as rows of their own, scored on the same origins.
    by_mase = bool(rows) and all(row.extra.get(MASE) is not None for row in rows if row.best_loss is not None)
    if by_mase:
        rows += _baseline_rows(runs)
    # sorted() is stable: runs without a best loss keep the path order find_runs gave them.
    # Bits per character (MASE) only where every scored run has them: a mixed folder keeps the loss's order.
    by_bpc = all(row.extra.get(BPC) is not None for row in rows if row.best_loss is not None)
    rank = MASE if by_mase else BPC if by_bpc else None

    def order(row: Row) -> tuple[bool, float]:
        value = row.best_loss if rank is None else row.extra.get(rank)
        return value is None, value or 0.0

    rows.sort(key=order)
    show_cell = "model" not in keys and len({row.cell for row in rows}) > 1
    return Leaderboard(rows, keys, extra_tags, show_cell, diagnostics, show_tokenizer)


def _baseline_rows(runs: list[Run]) -> list[Row]:
    """One row per classical method and scoring setup (series, origins, horizon, season) of the runs."""
    setups: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.baselines is not None:
            record = run.baselines
            setup = f"{record.get('data')}, {record.get('origins')} origins x {record.get('horizon')} steps"
            setups.setdefault(setup, record)
    rows = []
    for setup, record in setups.items():
        for method, scores in record["scores"].items():
            rows.append(
                Row(
                    run=f"{method} (baseline)" if len(setups) == 1 else f"{method} (baseline; {setup})",
                    status="baseline",
                    note="" if method == "naive" else f"season {record.get('season')}",
                    overrides={},
                    cell=None,
                    tokenizer=None,
                    parameters=None,
                    best_loss=None,
                    final_loss=None,
                    extra={MASE: scores.get("mase"), FORECAST_MAE: scores.get("mae")},
                )
            )
    return rows


def _tokenizer(run: Run) -> str | None:
    """``char``, ``bpe 512``, ``word 1024`` for a text run, None for other data."""
    if BPC not in run.scalars and OmegaConf.select(run.config, "data.tokenizer", default=None) is None:
        return None
    kind = OmegaConf.select(run.config, "data.tokenizer", default="char")
    return kind if kind == "char" else f"{kind} {OmegaConf.select(run.config, 'data.vocab_size')}"


def _parse_overrides(overrides: list[str]) -> dict[str, str]:
    """``["model=gru", "+trainer.x=1", "~clip"]`` -> ``{"model": "gru", "trainer.x": "1", "clip": ""}``."""
    parsed = {}
    for override in overrides:
        key, _, value = override.partition("=")
        parsed[key.lstrip("+~")] = value
    return parsed


def _short(value: str) -> str:
    """Override values as typed, floats from a search shortened to 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if any(c in value for c in ".eE") else value


def _format(column: str, value: object) -> str:
    if value is None:
        return "-"
    if column == "note":
        text = str(value)
        return text if len(text) <= NOTE_WIDTH else text[: NOTE_WIDTH - 1] + "…"
    if isinstance(value, float):
        if column == "tokens/s":
            return f"{value:,.0f}"
        if column == "wall time (s)":
            return f"{value:.1f}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
