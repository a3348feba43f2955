"""The LightningModule: truncated BPTT over streams (contract 1) around a SequenceModel (contract 2).

One hidden state per stage lives on the module. Each step starts from the state the previous step of
the same stage left, detached (gradients stop at the window boundary, the state flows on); each epoch and
each evaluation run starts from zeros. Validation has its own state, so running it mid-epoch leaves
training's untouched. Optimization stays automatic, so the Trainer's gradient_clip_val and
gradient_clip_algorithm do the clipping.

A training loss that is not finite, or that exceeds ``divergence_factor`` times the reference loss,
skips its optimizer step and stops the run. char-rnn's reference is the first loss, which suits text
(an untrained model is about as bad as a uniform guess) but not a regression, whose first window may
happen to be easy; so the reference is the larger of the first loss and the loss of a blind guess
(StreamDataModule.blind_guess_loss: ln V for tokens, the mean square of the targets for floats), and the
rule applies from step GRACE_STEPS on, past the swings of the first few Adam steps. The
weights stay those of the last good step, so no checkpoint ever holds NaN weights.

What an exact mid-epoch resume needs beyond Lightning's own state (every rank's training hidden state,
the random generators, the reference loss) is saved and restored by callbacks/exact_resume.py, and a
schedule that follows a time budget by callbacks/time_budget.py (docs/design.md §6, §7).
"""

import math
from typing import Any, cast

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.types import LRSchedulerConfigType, OptimizerLRScheduler
from torch import nn

from seqexp.data.spec import DataSpec
from seqexp.data.tokenizer import text_tokenizer
from seqexp.models.sequence_model import State, build_model, detach_state, evaluating
from seqexp.optimization import make_lr_scheduler, make_optimizer

STAGES = ("train", "val", "test")
GRACE_STEPS = 10  # the explosion rule starts here; a non-finite loss stops a run at any step


class SequenceLightningModule(pl.LightningModule):
    def __init__(
        self,
        model: dict[str, Any],
        data: dict[str, Any],
        optim: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        divergence_factor: float | None = 3.0,
    ) -> None:
        """``model``: conf/model/*.yaml as a dict; ``data``: a DataSpec as a dict; ``optim`` and
        ``scheduler``: conf/optim/*.yaml and conf/scheduler/*.yaml (None or empty: a constant lr).
        Plain containers only, so checkpoints load with weights_only=True. ``divergence_factor``: stop
        when the training loss exceeds this times the reference loss (None: only a non-finite loss stops
        the run)."""
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.divergence_factor = divergence_factor
        self.reference_loss: float | None = None
        self.divergence: str | None = None  # why training stopped as diverged
        self.validated_at_step: int | None = None  # the global step of the last validation that scored
        # Text: the validation split's tokens over its characters (1 for characters), so that the best
        # val/loss times this is nats per character, the objective that compares tokenizers.
        self.val_tokens_per_char = 1.0
        self.spec = DataSpec.from_dict(data)
        self.model = build_model(model, self.spec)
        self.states: dict[str, State] = dict.fromkeys(STAGES)
        self._eval_losses: list[torch.Tensor] = []
        # Text: each token id's length in characters, and the characters of the targets scored so far,
        # for bits per character whatever a token is (a plain attribute: checkpoints hold the tokenizer).
        self._char_lengths = text_tokenizer(self.spec).char_lengths() if self.spec.tokens else None
        self._eval_chars: list[torch.Tensor] = []
        self._eval_tokens = 0
        # A series its dataset scaled (data=series): val/mse and val/mae in the data's units, the loss on
        # the model's scale.
        targets_scale = [self.spec.scale[column] for column in self.spec.targets]
        self._target_scale = torch.tensor(targets_scale) if targets_scale else None
        self._eval_errors: list[torch.Tensor] = []

    # -- the shared step -------------------------------------------------------------------------
    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.spec.tokens:
            return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))
        return nn.functional.mse_loss(output, target)

    def _step(
        self, stage: str, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of ``batch`` and the model's output, carrying ``stage``'s state on."""
        x, y = batch
        output, self.states[stage] = self.model(x, detach_state(self.states[stage]))
        return self.loss(output, y), output

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        loss, _ = self._step("train", batch)
        if self._diverged(loss):
            self.trainer.should_stop = True
            return None  # Lightning then skips backward and the optimizer step: the weights stay good
        if self._is_logging_step():
            # Synced so that under DDP it is the loss of the whole batch across ranks, as one process sees.
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, sync_dist=True)
        return loss

    def _diverged(self, loss: torch.Tensor) -> bool:
        """Whether ``loss`` ends the run (on every rank at once); records why in ``self.divergence``.

        Reading the loss waits for the step's kernels (one host sync per step on a GPU): the price of
        never taking an optimizer step on a NaN.
        """
        value = float(loss.detach())
        reason = None
        if not math.isfinite(value):
            reason = f"the training loss is {value} at step {self.global_step}"
        else:
            if self.reference_loss is None:
                self.reference_loss = max(value, self._blind_guess_loss())
            limit = None if self.divergence_factor is None else self.divergence_factor * self.reference_loss
            if limit is not None and self.global_step >= GRACE_STEPS and value > limit:
                reason = (
                    f"the training loss {value:.4g} at step {self.global_step} exceeds divergence_factor="
                    f"{self.divergence_factor:g} x the reference loss {self.reference_loss:.4g}"
                )
        # Under DDP each rank sees its own loss; all of them must skip the step together.
        if self.trainer.world_size > 1:
            if not self.trainer.strategy.reduce_boolean_decision(reason is not None, all=False):
                return False
            reason = reason or f"another rank's training loss diverged at step {self.global_step}"
        if reason is not None:
            self.divergence = reason
        return reason is not None

    def _blind_guess_loss(self) -> float:
        datamodule = getattr(self.trainer, "datamodule", None)
        return datamodule.blind_guess_loss() if datamodule is not None else 0.0

    def _is_logging_step(self) -> bool:
        # Lightning writes step metrics every log_every_n_steps steps; a self.log call costs about as much
        # as a small model's whole step, so the steps in between skip it (and the grad norm).
        # (Lightning's LoggerConnector sets trainer.log_every_n_steps, which Trainer does not declare.)
        return (self.global_step + 1) % self.trainer.log_every_n_steps == 0  # type: ignore[attr-defined]

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    def _eval_step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, output = self._step(stage, batch)
        if batch_idx >= self.spec.eval_burn_in:
            self._eval_losses.append(loss)
            if self._target_scale is not None:
                error = (output - batch[1]).detach() * self._target_scale.to(output.device)
                self._eval_errors.append(torch.stack([error.square().mean(), error.abs().mean()]))
            if self._char_lengths is not None:
                targets = batch[1]
                # A no-op after the first window. float64 keeps a char run's count exact (its bpc is then
                # exactly loss / ln 2); Apple's MPS has no float64, and gets float32.
                dtype = torch.float32 if targets.device.type == "mps" else torch.float64
                self._char_lengths = self._char_lengths.to(targets.device, dtype)
                self._eval_chars.append(self._char_lengths[targets].sum())
                self._eval_tokens += targets.numel()

    # -- state resets ----------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        # (Lightning does not call this when it resumes in the middle of an epoch: the state the
        # interrupted epoch had reached is put back by callbacks/exact_resume.py.)
        self.states["train"] = None

    def on_validation_epoch_start(self) -> None:
        self.states["val"] = None
        self.discard_evaluation()

    def on_test_epoch_start(self) -> None:
        self.states["test"] = None
        self.discard_evaluation()

    # -- evaluation metrics ----------------------------------------------------------------------
    def discard_evaluation(self) -> None:
        """Forget the losses of an evaluation that is cut short (a signal mid-validation): a partial
        mean is not a score, so nothing is logged for it."""
        self._eval_losses = []
        self._eval_chars = []
        self._eval_tokens = 0
        self._eval_errors = []

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
            tokens_per_char = self._tokens_per_char()
            if stage == "val":
                self.val_tokens_per_char = tokens_per_char
            metrics[f"{stage}/bpc"] = mean * tokens_per_char / math.log(2)
            metrics[f"{stage}/ppl"] = math.exp(mean) if mean < 700 else math.inf
        elif self._eval_errors:
            errors = self.trainer.strategy.reduce(
                torch.stack(self._eval_errors).mean(dim=0), reduce_op="mean"
            )
            metrics[f"{stage}/mse"], metrics[f"{stage}/mae"] = errors.tolist()
        else:
            metrics[f"{stage}/mse"] = mean
        # Already equal on every rank; sync_dist only tells Lightning so (one more tiny all-reduce).
        self.log_dict(metrics, prog_bar=stage == "val", sync_dist=True)
        self.discard_evaluation()
        if stage == "val":
            self.validated_at_step = self.global_step

    def _tokens_per_char(self) -> float:
        """The scored targets of every rank: tokens over the characters they stand for. The mean loss per
        token times this is the loss per character (the total nats over the characters scored), so bpc
        compares across tokenizers; for characters it is exactly 1, and bpc is loss / ln 2 as it was."""
        chars = torch.stack(self._eval_chars).sum()
        counts = torch.stack([chars.new_tensor(float(self._eval_tokens)), chars])
        # Ranks score equal numbers of tokens, but not of characters: both are summed over the ranks.
        tokens, characters = self.trainer.strategy.reduce(counts, reduce_op="sum").tolist()
        return tokens / characters

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this before it clips, so this is the norm the clipping threshold is compared to.
        if not self._is_logging_step():
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads), on_step=True, on_epoch=False)

    # -- optimization ----------------------------------------------------------------------------
    def configure_optimizers(self) -> OptimizerLRScheduler:
        optimizer = make_optimizer(self.hparams["optim"], self.parameters())
        lr_scheduler = make_lr_scheduler(
            self.hparams["scheduler"], optimizer, run_steps=lambda: self.trainer.estimated_stepping_batches
        )
        if lr_scheduler is None:
            return {"optimizer": optimizer}
        # Its keys besides the scheduler come from conf/scheduler's YAML: Lightning checks them itself.
        return {"optimizer": optimizer, "lr_scheduler": cast(LRSchedulerConfigType, lr_scheduler)}

    # -- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_sequence(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """Run the model in eval mode on ``x`` from ``state``, leaving the stage states alone."""
        with evaluating(self):
            return self.model(x.to(self.device), state)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())
