"""How big a model would be, found before it is built: a model too big for memory is refused in one
line that says how big it is and what would fit, instead of an allocation error (or minutes of
swapping) when its weights are created.

The count comes from building the model on the ``meta`` device, which records shapes and allocates
nothing. A stack of L layers is counted from 1 and 2 layers (every layer after the first has the same
shape), so the count costs the same for any depth.
"""

import os
from pathlib import Path
from typing import Any

import torch

from seqexp.data.spec import DataSpec
from seqexp.errors import ConfigError
from seqexp.models.sequence_model import build_model

# Training keeps float32 weights, their gradients and Adam's two moments: four numbers per parameter.
BYTES_PER_PARAMETER = 16


def parameter_count(options: dict[str, Any], spec: DataSpec) -> int:
    """The parameters of ``build_model(options, spec)``, counted without allocating any."""

    def count(layers: int) -> int:
        with torch.device("meta"):
            model = build_model({**options, "num_layers": layers}, spec)
        return sum(p.numel() for p in model.parameters())

    layers = options.get("num_layers", 1)
    if layers <= 2:
        return count(layers)
    one, two = count(1), count(2)
    return one + (layers - 1) * (two - one)


def available_memory(device: torch.device) -> int:
    """Bytes free for a model on ``device``: free GPU memory, or the host's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError  # unreachable: the loop returns at PB


def largest_hidden_size(options: dict[str, Any], spec: DataSpec, budget: int) -> int:
    """The largest ``hidden_size`` (with the other options as given) whose training fits ``budget`` bytes;
    0 if none does."""
    low, high = 0, options["hidden_size"]
    while low < high:  # the count grows with hidden_size, so bisect
        middle = (low + high + 1) // 2
        if parameter_count({**options, "hidden_size": middle}, spec) * BYTES_PER_PARAMETER <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def check_model_fits(options: dict[str, Any], spec: DataSpec, device: torch.device) -> int:
    """The model's parameter count; ConfigError when training it needs more memory than ``device`` has."""
    parameters = parameter_count(options, spec)
    needed = parameters * BYTES_PER_PARAMETER
    free = available_memory(device)
    if needed <= free:
        return parameters
    fits = largest_hidden_size(options, spec, free)
    advice = (
        f"model.hidden_size={fits} or less fits with the other options unchanged"
        if fits
        else "no hidden_size fits with the other options: use fewer model.num_layers"
    )
    raise ConfigError(
        f"model.hidden_size={options['hidden_size']} with model.num_layers={options.get('num_layers', 1)} "
        f"makes {parameters:.3g} parameters, {_bytes(needed)} to train (weights, gradients and Adam state in "
        f"float32), but {device.type} has {_bytes(free)} free: {advice}"
    )
