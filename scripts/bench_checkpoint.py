"""What a periodic checkpoint costs: the time of one write of checkpoints/last.ckpt against the time of
one training step, for the same run that scripts/train.py builds.

    python scripts/bench_checkpoint.py                               # the char-RNN preset's shape
    python scripts/bench_checkpoint.py --steps 12 -o experiment=sine_seed

The run trains on a generated corpus (200k characters) with save_every_steps=2, so half the steps are
followed by a write; step and write times are taken apart with callbacks and reported as medians.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from harness import compose_config, generated_corpus, timed

from seqexp.callbacks.latest_checkpoint import LatestCheckpoint
from seqexp.run_layout import CHECKPOINT_DIR, LAST
from seqexp.tasks.train import build

CHAR_PRESET = ["experiment=charrnn_seed", "data=text"]


class StepTimer(pl.Callback):
    """Wall time of each training step (forward, backward, clipping, optimizer), writes excluded."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._start = time.perf_counter()

    def on_before_zero_grad(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10, help="training steps (a write after every second)")
    parser.add_argument(
        "-o", "--overrides", nargs="*", default=None, help="Hydra overrides instead of the char preset"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        overrides = (
            args.overrides
            if args.overrides is not None
            else [*CHAR_PRESET, f"data.path={generated_corpus(folder)}"]
        )
        overrides = [
            *overrides,
            f"trainer.max_steps={args.steps}",
            "save_every_steps=2",
            "trainer.limit_val_batches=1",
            "trainer.enable_progress_bar=false",
        ]
        cfg = compose_config(overrides, folder)
        datamodule, module, trainer = build(cfg)
        steps = StepTimer()
        trainer.callbacks.append(steps)
        latest = next(c for c in trainer.callbacks if isinstance(c, LatestCheckpoint))
        writes: list[float] = []
        latest.save = timed(latest.save, writes)
        trainer.fit(module, datamodule=datamodule)
        size = (folder / CHECKPOINT_DIR / LAST).stat().st_size

    model = cfg.model
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; overrides: {' '.join(overrides)}")
    print(
        f"model {model.cell} {model.num_layers}x{model.hidden_size}, batch {cfg.data.batch_size} x "
        f"seq_length {cfg.seq_length}, {module.parameter_count():,} parameters; {LAST} {size / 1e6:.1f} MB"
    )
    step, write = statistics.median(steps.seconds[1:]), statistics.median(writes)
    print(
        f"training step: median {step * 1e3:.1f} ms over {len(steps.seconds) - 1} steps (the first excluded)"
    )
    print(
        f"checkpoint write: median {write * 1e3:.1f} ms ({len(writes)} writes), {write / step:.1%} of a step"
    )
    print(f"every 10 minutes (save_every_minutes=10) that is {write / 600:.4%} of the run's time")


if __name__ == "__main__":
    main()
