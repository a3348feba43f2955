"""How a run computes in bf16: on the CPU only where the processor has bf16, and with autocast's cache.

bf16 autocast makes a recurrent step about 1.6 times as fast on a CPU with AVX-512 BF16 or AMX
(scripts/bench_train.py --precision). Without them torch emulates bf16, which is slower than fp32 and no
more accurate, so such a run trains in fp32 and says so in one line.

A recurrent cell multiplies by the same weights at every time step. Lightning's own bf16-mixed (2.6) turns
autocast's cache off, so the weights were cast to bf16 again at each of a window's steps, about 7 % of
the preset's step in torch's profiler; :class:`CachedBf16Autocast` casts them once per training step.
"""

from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import torch
from pytorch_lightning.plugins.precision import MixedPrecision
from pytorch_lightning.utilities import rank_zero_info

BF16_MIXED = ("bf16-mixed", "bf16")  # Lightning's names for bf16 autocast
BF16_PRECISIONS = (*BF16_MIXED, "bf16-true")
# Linux's names for the instructions: x86's AVX-512 BF16 and AMX, and Arm's BF16 extension.
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this processor has bf16 arithmetic: torch's own x86 checks, else Linux's CPU flags (Arm)."""
    if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
        return True
    try:
        flags = cpuinfo.read_text(errors="replace").split()
    except OSError:  # not Linux: no way to tell, and an emulated bf16 only costs speed
        return False
    return not BF16_CPU_FLAGS.isdisjoint(flags)


def trainer_precision(
    precision: str | int | None, accelerator: str | None
) -> tuple[str | int | None, list[MixedPrecision]]:
    """The Trainer's ``precision`` and precision plugins for the configured ones: a bf16 run on a CPU
    without bf16 trains in fp32, and bf16 autocast is :class:`CachedBf16Autocast` (the plugin is the
    precision then: Lightning takes one or the other)."""
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto" and not torch.cuda.is_available() and not torch.backends.mps.is_available()
    )
    if on_cpu:
        precision = cpu_precision(precision)
    if str(precision) in BF16_MIXED and (on_cpu or torch.cuda.is_available()):
        return None, [CachedBf16Autocast("cpu" if on_cpu else "cuda")]
    return precision, []


def cpu_precision(precision: str | int | None) -> str | int | None:
    """``precision`` for a run on the CPU: a bf16 one becomes ``32-true`` where the CPU has no bf16."""
    if str(precision) not in BF16_PRECISIONS or cpu_has_bf16():
        return precision
    rank_zero_info(
        f"trainer.precision={precision}: this CPU has no bf16 instructions (AVX-512 BF16, AMX or Arm BF16), "
        "so the run trains in fp32 (32-true)"
    )
    return "32-true"


class CachedBf16Autocast(MixedPrecision):
    """Lightning's bf16-mixed, with autocast's weight cache on for the steps (forward and loss).

    Lightning turned the cache off for a step that runs the model under ``torch.no_grad()`` first and with
    gradients after: the cached bf16 weights from the first call have no gradient path (its issue 20644).
    seqexp's training step runs the model once, with gradients. A custom cell that used its weights under
    no_grad inside its forward would need the cache off again.
    """

    def __init__(self, device: str) -> None:
        super().__init__(precision="bf16-mixed", device=device)

    @contextmanager
    def forward_context(self) -> Generator[None, None, None]:
        # The cache is emptied when the outermost autocast exits: the weights are cast once per step.
        with torch.autocast(self.device, dtype=torch.bfloat16):
            yield
