"""Every few validations, how far back the loss still reaches: the gradient flow through time.

Logs the figure ``val/grad_flow`` (the gradient norm against the lag, log scale, the truncation length
marked) and the scalar ``val/memory_steps``, and keeps the latest curve in the run folder's
``grad_flow.json``, for scripts/report.py to overlay the runs' curves.
"""

import json
from typing import TYPE_CHECKING, cast

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.utilities import rank_zero_warn

from seqexp.callbacks.periodic import PeriodicDiagnostic
from seqexp.diagnostics import MEMORY_THRESHOLD, gradient_flow, memory_steps
from seqexp.errors import ConfigError
from seqexp.run_layout import GRAD_FLOW_FILE
from seqexp.trackers.run_log import RunLog, validation_log_step

if TYPE_CHECKING:
    from seqexp.data.datamodule import StreamDataModule

    # The module every run trains. Lightning passes it as a LightningModule, whose attributes it does not
    # declare (nn.Module types them all as Tensor | Module): the hooks cast it.
    from seqexp.module import SequenceLightningModule


class GradientFlow(PeriodicDiagnostic):
    """Measures :func:`seqexp.diagnostics.gradient_flow` on held-out stretches at the first validation,
    every ``every``-th after it and for the final model.

    The stretches are the first ``rows`` non-overlapping pieces of length L of the validation split
    (L = ``length``, or ``length_factor`` x seq_length when ``length`` is null, so the figure shows what
    truncation throws away), each run from a zero state; L shrinks to fit a short split.
    """

    key = "callbacks.grad_flow."  # where conf/callbacks/default.yaml puts this callback, for messages

    def __init__(self, every: int, length: int | None, length_factor: int, rows: int) -> None:
        super().__init__(every)
        for name, value in (("length_factor", length_factor), ("rows", rows)):
            if value < 1:
                raise ConfigError(f"{self.key}{name}={value} is invalid: it must be an integer >= 1")
        if length is not None and length < 1:
            raise ConfigError(f"{self.key}length={length} is invalid: it must be null or an integer >= 1")
        self.length, self.length_factor, self.rows = length, length_factor, rows

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule, log: RunLog) -> None:
        module = cast("SequenceLightningModule", pl_module)
        # Lightning's DataConnector sets trainer.datamodule, which Trainer does not declare.
        datamodule = cast("StreamDataModule", trainer.datamodule)  # type: ignore[attr-defined]
        seq_length = datamodule.seq_length
        x, y = self.stretches(datamodule, seq_length)
        norms = gradient_flow(module.model, x.to(module.device), y.to(module.device), module.spec.tokens)
        norms = norms.cpu()
        memory = memory_steps(norms)
        step = validation_log_step(trainer)
        log.scalar("val/memory_steps", memory, step)
        log.figure("val/grad_flow", self.figure(norms, memory, seq_length, step), step)
        curve = {"step": step, "seq_length": seq_length, "memory_steps": memory, "norms": norms.tolist()}
        if log.run_dir is not None:
            (log.run_dir / GRAD_FLOW_FILE).write_text(json.dumps(curve))

    def stretches(self, datamodule: "StreamDataModule", seq_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = datamodule.aligned("val")
        length = self.length or self.length_factor * seq_length
        if length > len(inputs):
            rank_zero_warn(
                f"gradient flow: the validation split has {len(inputs)} steps, fewer than the stretch of "
                f"{length}; measuring over {len(inputs)}"
            )
            length = len(inputs)
        rows = min(self.rows, len(inputs) // length)

        def cut(series: torch.Tensor) -> torch.Tensor:
            stretch = series[: rows * length].reshape(rows, length, *series.shape[1:])
            # Token files hold compact ids (uint8/16/32); the model takes int64, as the streams serve it.
            return stretch if stretch.is_floating_point() else stretch.long()

        return cut(inputs), cut(targets)

    @staticmethod
    def figure(norms: torch.Tensor, memory: int, seq_length: int, step: int) -> Figure:
        # A bare Figure (no pyplot) needs no display and no global figure registry.
        figure = Figure(figsize=(7, 4))
        axes = figure.subplots()
        lags = range(len(norms))
        axes.semilogy(
            lags, norms.clamp_min(1e-30).tolist(), "b.-", markersize=3, label="|d loss_T / d e_(T-k)|"
        )
        axes.axvline(seq_length, color="r", linestyle="--", label=f"seq_length = {seq_length} (truncation)")
        if norms[0] > 0:
            axes.axhline(
                float(norms[0]) * MEMORY_THRESHOLD, color="gray", linestyle=":", label="1e-3 of lag 0"
            )
        axes.set_xlabel("lag k (steps before the scored step)")
        axes.set_ylabel("gradient norm, mean over rows")
        axes.set_title(f"gradient flow at step {step}: memory_steps = {memory}")
        axes.legend(loc="upper right", fontsize="small")
        return figure
