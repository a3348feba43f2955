"""The lecture notes' training loop in plain PyTorch: the oracle for the Lightning path (docs/design.md §8).

It trains a model over the same streams (``datamodule.stream``) as the Lightning module does, written out
top to bottom with nothing hidden in hooks: carry the state and detach it, forward, loss, zero_grad,
backward, clip, optimizer step, scheduler step, and a validation pass at the end of each epoch.
tests/test_reference_loop.py checks that ``seqexp.tasks.train.build`` + ``trainer.fit`` produce exactly
its losses and weights; scripts/bench_train.py times the whole seqexp loop against it.

It reads from the configuration what it can reproduce: the optimizer and scheduler (built by
seqexp/optimization.py from the same YAML), ``clip`` and ``clip_algorithm``, ``trainer.max_epochs`` and
``trainer.max_steps``, and ``trainer.precision`` when it is bf16-mixed (autocast, as Lightning's plugin
does). It validates once per epoch, on one process, without ``limit_*_batches``, gradient accumulation or
other precisions.
"""

import contextlib
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from seqexp.data.datamodule import StreamDataModule
from seqexp.models.sequence_model import SequenceModel, detach_state
from seqexp.optimization import LIGHTNING, make_lr_scheduler, make_optimizer
from seqexp.precision import BF16_MIXED

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ReferenceRun:
    """What the loop saw: the training loss of every step, the gradient norm before clipping of every
    step (when clipping by norm), and the validation loss of every epoch."""

    train_losses: list[torch.Tensor] = field(default_factory=list)
    grad_norms: list[torch.Tensor] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.train_losses)


def sequence_loss(output: torch.Tensor, target: torch.Tensor, tokens: bool) -> torch.Tensor:
    """Cross-entropy over every position for tokens, mean squared error for floats (written again here
    rather than taken from the module, so that the oracle does not share the code it checks)."""
    if tokens:
        return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))
    return nn.functional.mse_loss(output, target)


def autocast(precision: object, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """What Lightning wraps each step in for ``precision``: nothing for fp32, bf16 autocast for bf16-mixed."""
    if str(precision) in BF16_MIXED:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision is None or str(precision) in ("32", "32-true"):
        return contextlib.nullcontext()
    raise ValueError(f"the reference loop trains in 32-true or bf16-mixed, not {precision}")


@torch.no_grad()
def evaluate(
    model: SequenceModel,
    batches: list[Batch],
    burn_in: int,
    tokens: bool,
    in_precision: contextlib.AbstractContextManager[object],
) -> float:
    """Mean loss over the windows after the first ``burn_in``, the state carried from zeros."""
    model.eval()
    state, losses = None, []
    for index, (x, y) in enumerate(batches):
        with in_precision:
            output, state = model(x, state)
            if index >= burn_in:
                losses.append(sequence_loss(output, y, tokens))
    return float(torch.stack(losses).mean())


def reference_fit(
    cfg: DictConfig,
    model: SequenceModel,
    datamodule: StreamDataModule,
    device: torch.device | str = "cpu",
) -> ReferenceRun:
    """Train ``model`` in place as ``cfg`` says, on ``datamodule``'s train split, validating on its val
    split after each epoch."""
    tokens, burn_in = datamodule.spec.tokens, datamodule.eval_burn_in
    assert burn_in is not None, "check_streams (run by build) settles a null data.eval_burn_in"
    train = [(x.to(device), y.to(device)) for x, y in datamodule.stream("train")]
    val = [(x.to(device), y.to(device)) for x, y in datamodule.stream("val")]
    max_epochs, max_steps = cfg.trainer.max_epochs, cfg.trainer.max_steps
    run_steps = len(train) * max_epochs if max_steps < 0 else min(max_steps, len(train) * max_epochs)

    model.to(device)
    in_precision = autocast(cfg.trainer.get("precision"), torch.device(device))
    optimizer = make_optimizer(
        cast(dict[str, Any], OmegaConf.to_container(cfg.optim, resolve=True)), model.parameters()
    )
    scheduler_cfg = cast(dict[str, Any], OmegaConf.to_container(cfg.scheduler, resolve=True))
    lr_scheduler = make_lr_scheduler(scheduler_cfg, optimizer, run_steps=lambda: run_steps)
    if lr_scheduler is not None and lr_scheduler.get("frequency", 1) != 1:
        raise ValueError("the reference loop steps a scheduler at every interval (frequency 1)")
    if lr_scheduler is not None and lr_scheduler.get("monitor") not in (None, "val/loss"):
        raise ValueError("the reference loop has only val/loss for a scheduler to monitor")
    scheduler = lr_scheduler["scheduler"] if lr_scheduler else None
    interval = (scheduler_cfg.get(LIGHTNING) or {}).get("interval", "epoch") if scheduler else None

    run = ReferenceRun()
    for _ in range(max_epochs):
        model.train()
        state = None  # every epoch starts from a zero state
        for x, y in train:
            if run.steps == run_steps:
                break
            # Carry the state from the previous window, but cut the graph there: truncated BPTT.
            with in_precision:
                output, state = model(x, detach_state(state))
                loss = sequence_loss(output, y, tokens)
            optimizer.zero_grad()
            loss.backward()
            if cfg.clip is not None and cfg.clip_algorithm == "norm":
                run.grad_norms.append(nn.utils.clip_grad_norm_(model.parameters(), cfg.clip))
            elif cfg.clip is not None:
                nn.utils.clip_grad_value_(model.parameters(), cfg.clip)
            optimizer.step()
            if interval == "step":
                assert scheduler is not None, "only a scheduler has an interval"
                scheduler.step()
            run.train_losses.append(loss.detach())
        run.val_losses.append(evaluate(model, val, burn_in, tokens, in_precision))
        if interval == "epoch":
            assert scheduler is not None and lr_scheduler is not None, "only a scheduler has an interval"
            if lr_scheduler.get("monitor"):
                scheduler.step(run.val_losses[-1])
            else:
                scheduler.step()
        if run.steps == run_steps:
            break
    return run
