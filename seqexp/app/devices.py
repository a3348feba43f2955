"""A device named on the command line (``device=cuda:1``), checked against this machine."""

import torch

from seqexp.errors import ConfigError


def choose_device(name: str, key: str = "device") -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{key}={name!r} is invalid: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}={name!r} is not available on this machine: use {key}=cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"{key}={name!r} does not exist: this machine has cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    return device
