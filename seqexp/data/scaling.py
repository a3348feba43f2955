"""A series' columns scaled by constants fitted on the training split alone, so that nothing of the
held-out data leaks into training; the constants travel in the DataSpec (and every checkpoint), so that
metrics, figures and forecasts are turned back into the data's own units."""

import numpy as np

from seqexp.errors import ConfigError

SCALES = ("standard", "minmax", "none")


def fit_scaling(train: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, scale)`` per column of ``train`` (N, columns), with ``value = scaled * scale + offset``:
    standard: mean and standard deviation; minmax: the minimum and the range (the training split in
    [0, 1]); none: 0 and 1. A column constant over the training split keeps the scale 1."""
    if kind not in SCALES:
        raise ConfigError(f"data.scale={kind!r} is invalid: choose one of {', '.join(SCALES)}")
    if kind == "none":
        return np.zeros(train.shape[1]), np.ones(train.shape[1])
    if kind == "standard":
        offset, scale = train.mean(axis=0), train.std(axis=0)
    else:
        offset, scale = train.min(axis=0), train.max(axis=0) - train.min(axis=0)
    return offset, np.where(scale > 0, scale, 1.0)
