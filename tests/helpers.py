"""Helpers the tests share that are not fixtures."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]


def read_events(run_dir: Path) -> EventAccumulator:
    """A run's TensorBoard events, read with TensorBoard's own reader (nothing sampled away)."""
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator
