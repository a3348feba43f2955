"""The names inside a run's folder (docs/design.md §6), in one torch-free place for every reader.

The YAML cannot import them, so conf/logger/tensorboard.yaml (``name: tensorboard``) and
conf/callbacks/default.yaml (the checkpoints' ``dirpath`` and ``filename``) spell theirs out again.
"""

from pathlib import Path

HYDRA_DIR = ".hydra"  # Hydra's record of how the run was started
SAVED_CONFIG = Path(HYDRA_DIR) / "config.yaml"  # the composed config
OVERRIDES = Path(HYDRA_DIR) / "overrides.yaml"  # what was typed on the command line
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"  # the latest state
BEST = "best-step*.ckpt"  # the best state by val/loss, one file named for its step
TENSORBOARD_DIR = "tensorboard"
EVENT_FILES = "events.out.tfevents.*"  # TensorBoard's own names, in TENSORBOARD_DIR
GRAD_FLOW_FILE = "grad_flow.json"  # in TENSORBOARD_DIR: the last gradient-flow curve, for the report
STATUS_FILE = "status.json"
OWNER = ".owner"  # created by the run that owns the folder
