"""The names inside a run's folder (docs/design.md §6), and the checkpoint a path names, in one torch-free
place for every reader (so that a mistyped ``resume=`` or ``ckpt=`` is answered before torch loads).

The YAML cannot import them, so conf/logger/tensorboard.yaml (``name: tensorboard``) and
conf/callbacks/default.yaml (the checkpoints' ``dirpath`` and ``filename``) spell theirs out again.
"""

from pathlib import Path

from seqexp.data.files import existing_file
from seqexp.errors import ConfigError

HYDRA_DIR = ".hydra"  # Hydra's record of how the run was started
SAVED_CONFIG = Path(HYDRA_DIR) / "config.yaml"  # the composed config
OVERRIDES = Path(HYDRA_DIR) / "overrides.yaml"  # what was typed on the command line
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"  # the latest state
BEST = "best-step*.ckpt"  # the best state by val/loss, one file named for its step
TENSORBOARD_DIR = "tensorboard"
EVENT_FILES = "events.out.tfevents.*"  # TensorBoard's own names, in TENSORBOARD_DIR
GRAD_FLOW_FILE = "grad_flow.json"  # the last gradient-flow curve, for the report (in TENSORBOARD_DIR before)
STATUS_FILE = "status.json"
TRACKER_IDS = "trackers.json"  # the id each tracker (MLflow, W&B) gave the run, for a resume to continue
BASELINES_FILE = "baselines.json"  # a forecast series' classical baselines, scored on the run's origins
METRICS_FILE = "metrics.csv"  # every scalar the run logged, whatever its loggers (seqexp/trackers/files.py)
OWNER = ".owner"  # created by the run that owns the folder
MULTIRUN_CONFIG = "multirun.yaml"  # in a sweep's folder, by Hydra: the sweep's config and overrides
SWEEP_STOPPED = "stopped.json"  # in a sweep's folder: the signal that stopped the sweep

EXPECTED = (
    f"a checkpoint written by scripts/train.py, e.g. outputs/runs/<date>/<time>/{CHECKPOINT_DIR}/{LAST}"
)


def checkpoint_file(path: str | Path, key: str = "ckpt", best: bool = False) -> Path:
    """The checkpoint file ``path`` names: the file itself, or ``checkpoints/last.ckpt`` of a run folder
    (with ``best``, its best checkpoint by val/loss where it has one)."""
    candidate = Path(path).expanduser()
    if best and candidate.is_dir():
        found = sorted((candidate / CHECKPOINT_DIR).glob(BEST))
        if found:
            return found[-1]
    if candidate.is_dir():
        last = candidate / CHECKPOINT_DIR / LAST
        if not last.is_file():
            raise ConfigError(
                f"{key}={str(path)!r} is a folder with no {CHECKPOINT_DIR}/{LAST}: give {EXPECTED}"
            )
        return last
    return existing_file(str(path), key, EXPECTED)
