"""The lecture notes' time series: sin(t) sampled at regular steps; validation is its continuation."""

import math

import torch

from seqexp.data.datamodule import StreamDataModule
from seqexp.data.spec import DataSpec
from seqexp.errors import ConfigError


def sine_series(
    n_points: int,
    step: float = math.pi / 20,
    amplitude: float = 1.0,
    frequency: float = 1.0,
    phase: float = 0.0,
    noise_std: float = 0.0,
    seed: int = 0,
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
        n_points: int = 2000,
        step: float = math.pi / 20,
        amplitude: float = 1.0,
        frequency: float = 1.0,
        phase: float = 0.0,
        noise_std: float = 0.0,
        val_fraction: float = 0.1,
        batch_size: int = 8,
        seq_length: int = 20,
        eval_burn_in: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seq_length, eval_burn_in)
        if n_points < 2:
            raise ConfigError(f"data.n_points={n_points} is invalid: it must be an integer >= 2")
        if step <= 0:
            raise ConfigError(f"data.step={step} is invalid: it must be > 0")
        if noise_std < 0:
            raise ConfigError(f"data.noise_std={noise_std} is invalid: it must be >= 0")
        self.series_args = dict(
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
