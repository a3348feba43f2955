"""The names inside a run's folder (docs/design.md §6), in one torch-free place for every reader."""

from pathlib import Path

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"  # the latest state; best-step<N>.ckpt beside it is the best by val/loss
SAVED_CONFIG = Path(".hydra") / "config.yaml"
