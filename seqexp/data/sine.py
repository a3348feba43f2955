"""The lecture notes' time series: sin(t) sampled at regular steps; validation is its continuation."""

from typing import Any

import torch

from seqexp.data.datamodule import StreamDataModule
from seqexp.data.spec import DataSpec
from seqexp.errors import ConfigError


def sine_series(
    n_points: int,
    *,
    step: float,
    amplitude: float,
    frequency: float,
    phase: float,
    noise_std: float,
    seed: int,
) -> torch.Tensor:
    """``amplitude * sin(frequency * t + phase)`` at ``t = 0, step, 2*step, ...``, shape ``(n_points, 1)``."""
    t = torch.arange(n_points, dtype=torch.float64) * step
    values = amplitude * torch.sin(frequency * t + phase)
    if noise_std > 0:
        generator = torch.Generator().manual_seed(seed)
        values = values + noise_std * torch.randn(n_points, generator=generator, dtype=torch.float64)
    return values.float().unsqueeze(-1)


class SineDataModule(StreamDataModule):
    """A sine curve cut into a training stretch and the held-out stretch that follows it."""

    # The first window of an evaluation warms the state up from zeros; scoring it would measure the
    # cold start rather than the fit of the curve.
    default_eval_burn_in = 1

    def __init__(
        self,
        *,
        n_points: int,
        step: float,
        amplitude: float,
        frequency: float,
        phase: float,
        noise_std: float,
        val_fraction: float,
        batch_size: int | None,
        seq_length: int,
        eval_burn_in: int | None,
        seed: int,
    ) -> None:
        super().__init__(batch_size, seq_length, eval_burn_in)
        if n_points < 2:
            raise ConfigError(f"data.n_points={n_points} is invalid: it must be an integer >= 2")
        if step <= 0:
            raise ConfigError(f"data.step={step} is invalid: it must be > 0")
        if noise_std < 0:
            raise ConfigError(f"data.noise_std={noise_std} is invalid: it must be >= 0")
        self.series_args: dict[str, Any] = dict(
            n_points=n_points,
            step=step,
            amplitude=amplitude,
            frequency=frequency,
            phase=phase,
            noise_std=noise_std,
            seed=seed,
        )
        self.val_fraction = val_fraction
        self.time_step = step

    @property
    def spec(self) -> DataSpec:
        return DataSpec(input_size=1, output_size=1, tokens=False, eval_burn_in=self.burn_in)

    def load_splits(self) -> dict[str, torch.Tensor]:
        series = sine_series(**self.series_args)
        n_val = int(len(series) * self.val_fraction)
        return {"train": series[: len(series) - n_val], "val": series[len(series) - n_val :]}
