"""Which precision a run on the CPU trains in: bf16 where the processor computes it, fp32 where it does not.

bf16 autocast nearly halves a recurrent step on a CPU with AVX-512 BF16 or AMX (scripts/bench_train.py
--precision). Without them torch emulates bf16, which is slower than fp32 and no more accurate, so such
a run trains in fp32 and says so in one line.
"""

from pathlib import Path

import torch
from pytorch_lightning.utilities import rank_zero_info

BF16_PRECISIONS = ("bf16-mixed", "bf16-true", "bf16")  # Lightning's names for them
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


def cpu_precision(precision: str | int | None) -> str | int | None:
    """``precision`` for a run on the CPU: a bf16 one becomes ``32-true`` where the CPU has no bf16."""
    if str(precision) not in BF16_PRECISIONS or cpu_has_bf16():
        return precision
    rank_zero_info(
        f"trainer.precision={precision}: this CPU has no bf16 instructions (AVX-512 BF16, AMX or Arm BF16), "
        "so the run trains in fp32 (32-true)"
    )
    return "32-true"
