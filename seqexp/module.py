"""The LightningModule: truncated BPTT over streams (contract 1) around a SequenceModel (contract 2).

One hidden state per stage lives on the module. Each step starts from the state the previous step of
the same stage left, detached (gradients stop at the window boundary, the state flows on); each epoch and
each evaluation run starts from zeros. Validation has its own state, so running it mid-epoch leaves
training's untouched. Optimization stays automatic, so the Trainer's gradient_clip_val and
gradient_clip_algorithm do the clipping.
"""

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from seqexp.data.spec import DataSpec
from seqexp.models.sequence_model import State, build_model, detach_state
from seqexp.optimization import make_lr_scheduler, make_optimizer

STAGES = ("train", "val", "test")


class SequenceLightningModule(pl.LightningModule):
    def __init__(
        self,
        model: dict[str, Any],
        data: dict[str, Any],
        optim: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        """``model``: conf/model/*.yaml as a dict; ``data``: a DataSpec as a dict; ``optim`` and
        ``scheduler``: conf/optim/*.yaml and conf/scheduler/*.yaml (None or empty: a constant lr).
        Plain containers only, so checkpoints load with weights_only=True."""
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.spec = DataSpec.from_dict(data)
        self.model = build_model(model, self.spec)
        self.states: dict[str, State] = dict.fromkeys(STAGES)
        self._eval_losses: list[torch.Tensor] = []

    # -- the shared step -------------------------------------------------------------------------
    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.spec.tokens:
            return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))
        return nn.functional.mse_loss(output, target)

    def _step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        output, self.states[stage] = self.model(x, detach_state(self.states[stage]))
        return self.loss(output, y)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._step("train", batch)
        if self._is_logging_step():
            # Synced so that under DDP it is the loss of the whole batch across ranks, as one process sees.
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, sync_dist=True)
        return loss

    def _is_logging_step(self) -> bool:
        # Lightning writes step metrics every log_every_n_steps steps; a self.log call costs about as much
        # as a small model's whole step, so the steps in between skip it (and the grad norm).
        return (self.global_step + 1) % self.trainer.log_every_n_steps == 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    def _eval_step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss = self._step(stage, batch)
        if batch_idx >= self.spec.eval_burn_in:
            self._eval_losses.append(loss)

    # -- state resets ----------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self.states["train"] = None

    def on_validation_epoch_start(self) -> None:
        self.states["val"] = None
        self._eval_losses = []

    def on_test_epoch_start(self) -> None:
        self.states["test"] = None
        self._eval_losses = []

    # -- evaluation metrics ----------------------------------------------------------------------
    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    def _log_eval_metrics(self, stage: str) -> None:
        if not self._eval_losses:
            return
        # Every rank has the same number of equal-sized windows, so the mean of the ranks' means is
        # the exact mean; reducing the loss before deriving ppl keeps ppl exact too. One host sync per
        # evaluation run; the values are then plain floats, equal on every rank.
        local_mean = torch.stack(self._eval_losses).mean()
        mean = float(self.trainer.strategy.reduce(local_mean, reduce_op="mean"))
        metrics = {f"{stage}/loss": mean}
        if self.spec.tokens:
            metrics[f"{stage}/bpc"] = mean / math.log(2)
            metrics[f"{stage}/ppl"] = math.exp(mean) if mean < 700 else math.inf
        else:
            metrics[f"{stage}/mse"] = mean
        # Already equal on every rank; sync_dist only tells Lightning so (one more tiny all-reduce).
        self.log_dict(metrics, prog_bar=stage == "val", sync_dist=True)
        self._eval_losses = []

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this before it clips, so this is the norm the clipping threshold is compared to.
        if not self._is_logging_step():
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads), on_step=True, on_epoch=False)

    # -- optimization ----------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = make_optimizer(self.hparams.optim, self.parameters())
        lr_scheduler = make_lr_scheduler(
            self.hparams.scheduler, optimizer, run_steps=lambda: self.trainer.estimated_stepping_batches
        )
        if lr_scheduler is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}

    # -- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_sequence(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """Run the model in eval mode on ``x`` from ``state``, leaving the stage states alone."""
        was_training = self.training
        self.eval()
        try:
            return self.model(x.to(self.device), state)
        finally:
            self.train(was_training)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())
