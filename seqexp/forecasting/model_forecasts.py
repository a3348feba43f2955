"""A series model's forecasts from origins of its table, in the data's units: the one way the forecast
callback (scoring the held-out rows) and scripts/forecast.py (past the end) turn a model into numbers."""

import numpy as np
import torch

from seqexp.data.series import model_rows
from seqexp.data.spec import DataSpec
from seqexp.diagnostics import closed_loop_forecasts


def model_forecasts(
    model: torch.nn.Module, spec: DataSpec, values: np.ndarray, origins: list[int], horizon: int
) -> np.ndarray:
    """``(origins, horizon, targets)``: from each origin (a row of ``values``, the table in the data's
    units; ``len(values)`` forecasts past its end), the state warmed up on the rows before it, then
    ``horizon`` steps in closed loop. The scaling (and the differencing) is the checkpoint's ``spec``."""
    offset, scale = np.asarray(spec.offset), np.asarray(spec.scale)
    inputs, targets = list(spec.inputs), list(spec.targets)
    # A differenced model's row j is the change into table row j + 1.
    shift = 1 if spec.differenced else 0
    series = model_rows(values, spec.differenced)
    device = next(model.parameters()).device
    scaled = torch.as_tensor((series[:, inputs] - offset[inputs]) / scale[inputs], dtype=torch.float32)
    fed_back = None if inputs == targets else [inputs.index(column) for column in targets]
    predictions = closed_loop_forecasts(
        model, scaled.to(device), [origin - shift for origin in origins], horizon, fed_back
    )
    forecasts = predictions.cpu().double().numpy() * scale[targets] + offset[targets]
    if spec.differenced:
        last = values[[origin - 1 for origin in origins]][:, targets]
        forecasts = last[:, None, :] + np.cumsum(forecasts, axis=1)
    return forecasts
