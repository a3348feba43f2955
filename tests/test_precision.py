"""bf16 on the CPU (seqexp/precision.py): it trains under autocast where the processor has bf16, and a run
asked for it on one that has not trains in fp32, saying so in one line."""

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from seqexp import precision
from seqexp.tasks.train import build
from tests.helpers import compose_train, grammar_corpus

TINY_TEXT = [
    "data=text",
    "data.path=corpus.txt",
    "model=gru",
    "model.hidden_size=32",
    "seq_length=20",
    "data.batch_size=8",
    "trainer.max_steps=3",
    "trainer.enable_progress_bar=false",
    "trainer.limit_val_batches=1",
    "test_after_fit=false",
]


def built(tmp_path: Path, monkeypatch, *extra: str):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text(grammar_corpus(300), encoding="utf-8")
    return build(compose_train([*TINY_TEXT, *extra], tmp_path))


class StepFlag(pl.Callback):
    """Holds ``flag[0]`` true from the start to the end of each training batch."""

    def __init__(self, flag: list[bool]) -> None:
        self.flag = flag

    def on_train_batch_start(self, *args) -> None:
        self.flag[0] = True

    def on_train_batch_end(self, *args) -> None:
        self.flag[0] = False


@pytest.mark.skipif(not precision.cpu_has_bf16(), reason="this CPU has no bf16 instructions")
def test_bf16_mixed_trains_a_few_steps_on_the_cpu_under_autocast(tmp_path, monkeypatch):
    datamodule, module, trainer = built(tmp_path, monkeypatch, "trainer.precision=bf16-mixed")
    assert trainer.precision == "bf16-mixed"
    in_step, head_outputs = [False], []  # what the head sees inside training steps

    def note_dtype(_module, _inputs, output: torch.Tensor) -> None:
        if in_step[0]:
            # With autocast's cache: the recurrent weights are cast once per step, not at each time step.
            head_outputs.append((output.dtype, torch.is_autocast_cache_enabled()))

    module.model.head.register_forward_hook(note_dtype)
    trainer.callbacks.append(StepFlag(in_step))
    before = {name: p.detach().clone() for name, p in module.named_parameters()}

    trainer.fit(module, datamodule=datamodule)

    assert trainer.global_step == 3
    assert head_outputs == [(torch.bfloat16, True)] * 3, "a training step ran outside cached bf16 autocast"
    # Mixed: the weights stay fp32 and move; the loss is finite.
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert any(not torch.equal(p, before[name]) for name, p in module.named_parameters())
    assert math.isfinite(float(trainer.callback_metrics["val/loss"]))


def test_without_bf16_a_bf16_run_trains_in_fp32_and_says_so_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)  # a CPU without AVX-512 BF16 or AMX
    datamodule, module, trainer = built(tmp_path, monkeypatch, "trainer.precision=bf16-mixed")
    assert trainer.precision == "32-true"
    lines = [r.getMessage() for r in caplog.records if "no bf16 instructions" in r.getMessage()]
    assert lines == [
        "trainer.precision=bf16-mixed: this CPU has no bf16 instructions (AVX-512 BF16, AMX or Arm BF16), "
        "so the run trains in fp32 (32-true)"
    ]
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 3


def test_fp32_is_left_alone_and_the_check_reads_linux_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.cpu_precision("32-true") == "32-true"
    assert precision.cpu_precision("bf16-true") == "32-true"
    # Arm names its bf16 extension "bf16" among the Features; an x86 CPU without it names neither.
    monkeypatch.undo()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    arm, old_x86 = tmp_path / "arm", tmp_path / "x86"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    old_x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert precision.cpu_has_bf16(arm) and not precision.cpu_has_bf16(old_x86)
