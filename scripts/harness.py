"""What the benchmark scripts (bench_*.py) share; not a command itself.

They import it as ``import harness``: ``python scripts/bench_*.py`` puts scripts/ first on sys.path.
"""

import functools
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]


def compose_config(overrides: list[str], out_dir: Path) -> DictConfig:
    """conf/train.yaml with ``overrides``, as scripts/train.py composes it, writing only under ``out_dir``."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        # The generated corpus's token file goes with it into the temporary folder.
        paths = [f"paths.output_dir={out_dir}", f"paths.root_dir={REPO}", f"paths.data_dir={out_dir}/data"]
        return compose("train", overrides=[*overrides, *paths, "test_after_fit=false"])


def generated_corpus(folder: Path, n_chars: int = 200_000) -> Path:
    """Deterministic text with some structure (words drawn from a small lexicon)."""
    generator = torch.Generator().manual_seed(0)
    lexicon = ["The", "king", "and", "queen", "of", "rome", "shall", "speak", "now", "thou", "art", "night"]
    words = torch.randint(len(lexicon), (n_chars // 4,), generator=generator).tolist()
    path = folder / "corpus.txt"
    path.write_text(" ".join(lexicon[w] for w in words)[:n_chars], encoding="utf-8")
    return path


class FitTimer(pl.Callback):
    """Wall time from the first to the last training step, validation and checkpoints included."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start


def timed(function: Callable[..., Any], seconds: list[float]) -> Callable[..., Any]:
    """``function``, appending the wall time of each call to ``seconds``."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    return run


def run_train_script(
    overrides: list[str], log: Path, env: dict[str, str] | None = None
) -> tuple[int, resource.struct_rusage]:
    """scripts/train.py with ``overrides`` as a child process, its output in ``log``: its exit code and the
    kernel's account of that one process (``ru_maxrss``, the peak resident size, is in KiB on Linux)."""
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "train.py"), *overrides],
            stdout=output,
            stderr=output,
            env=env,
        )
        # wait4, not wait: the kernel's account of this one process (faults, system time, peak size).
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    return code, usage
