"""The Lightning path trains exactly like the plain loop of seqexp/reference_loop.py (docs/design.md §8):
the same loss at every step, the same validation losses and the same final weights, on the CPU, for each
cell, with clipping that really clips, with step and epoch schedulers, and under bf16 autocast."""

from pathlib import Path

import pytest
import torch

from seqexp.precision import cpu_has_bf16
from seqexp.reference_loop import reference_fit
from seqexp.tasks.train import build
from tests.helpers import TINY_LOGGED, compose_train, read_events

CLIP = 1.0  # the tiny models' gradient norms here range from about 0.3 to 3: some steps are clipped

CASES = {
    "rnn": ["model=rnn"],
    "lstm": ["model=lstm"],
    "gru": ["model=gru"],
    "peephole-lstm": ["model=peephole-lstm", "model.peephole_init=0.1"],
    "lstm-2x-sgd-warmup-cosine": [
        "model=lstm", "model.num_layers=2", "optim=sgd", "scheduler=warmup_cosine",
        "scheduler.warmup_steps=4",
    ],
    "gru-adamw-plateau": [
        "model=gru", "optim=adamw", "scheduler=plateau", "scheduler.patience=0", "+scheduler.threshold=10",
    ],
    "lstm-bf16-mixed": ["model=lstm", "trainer.precision=bf16-mixed"],  # where the CPU has bf16
}  # fmt: skip
SLOW_CASES = {"lstm-bf16-mixed"}  # 9 s, the longest case: the slow tier


def lightning_fit(cfg, out: Path):
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    events = read_events(out)
    scalars = {
        tag: [e.value for e in events.Scalars(tag)] for tag in ("train/loss", "train/grad_norm", "val/loss")
    }
    return module.model, scalars


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, marks=pytest.mark.slow if case in SLOW_CASES else ()) for case in CASES],
    ids=list(CASES),
)
def test_lightning_trains_exactly_like_the_reference_loop(tmp_path: Path, case: str):
    if "bf16" in case and not cpu_has_bf16():
        pytest.skip("this CPU has no bf16 instructions: the run would train in fp32")
    overrides = [*TINY_LOGGED, *CASES[case], f"clip={CLIP}", "clip_algorithm=norm"]
    lightning_model, logged = lightning_fit(
        compose_train(overrides, tmp_path / "lightning"), tmp_path / "lightning"
    )

    # The same seed gives the same initial weights and the same windows.
    datamodule, module, _ = build(compose_train(overrides, tmp_path / "reference"))
    reference = reference_fit(compose_train(overrides, tmp_path), module.model, datamodule)

    assert reference.steps == len(logged["train/loss"]) == 22
    exact = {"rtol": 0, "atol": 0}
    # TensorBoard stores float32, as the losses are: equal bit for bit.
    torch.testing.assert_close(
        torch.tensor(logged["train/loss"]), torch.stack(reference.train_losses), **exact
    )
    torch.testing.assert_close(
        torch.tensor(logged["train/grad_norm"]), torch.stack(reference.grad_norms), **exact
    )
    torch.testing.assert_close(torch.tensor(logged["val/loss"]), torch.tensor(reference.val_losses), **exact)
    torch.testing.assert_close(lightning_model.state_dict(), module.model.state_dict(), **exact)
    # Clipping acted at some steps and not at others: the comparison covers both paths.
    norms = torch.stack(reference.grad_norms)
    assert (norms > CLIP).any() and (norms < CLIP).any(), norms


def test_value_clipping_matches_too(tmp_path: Path):
    overrides = [*TINY_LOGGED, "model=lstm", "clip=0.01", "clip_algorithm=value"]
    lightning_model, logged = lightning_fit(
        compose_train(overrides, tmp_path / "lightning"), tmp_path / "lightning"
    )
    datamodule, module, _ = build(compose_train(overrides, tmp_path / "reference"))
    reference = reference_fit(compose_train(overrides, tmp_path), module.model, datamodule)
    torch.testing.assert_close(
        torch.tensor(logged["train/loss"]), torch.stack(reference.train_losses), rtol=0, atol=0
    )
    torch.testing.assert_close(lightning_model.state_dict(), module.model.state_dict(), rtol=0, atol=0)
    # Some gradient element exceeded the clip value: the largest element of a gradient is at least its
    # norm (train/grad_norm, before clipping) over the square root of its size.
    size = sum(p.numel() for p in module.model.parameters())
    assert max(logged["train/grad_norm"]) / size**0.5 > 0.01


def test_the_comparison_can_fail(tmp_path: Path):
    """The same check on a run with a different clip value does not pass: the test is not vacuous."""
    overrides = [*TINY_LOGGED, "model=rnn", f"clip={CLIP}"]
    _, logged = lightning_fit(compose_train(overrides, tmp_path / "lightning"), tmp_path / "lightning")
    datamodule, module, _ = build(compose_train(overrides, tmp_path / "reference"))
    reference = reference_fit(
        compose_train([*overrides, f"clip={CLIP * 4}"], tmp_path), module.model, datamodule
    )
    with pytest.raises(AssertionError):
        torch.testing.assert_close(torch.tensor(logged["train/loss"]), torch.stack(reference.train_losses))
