"""The classic memory task: random signs, and the target is the input ``delay`` steps ago.

Predicting it needs a memory of the last ``delay`` inputs and nothing else, so it separates the cells
that the sine (one step of a smooth curve) does not: a vanilla RNN's gradient fades long before 30 steps,
a gated cell keeps it. It also shows the limit of truncated BPTT: with ``seq_length`` at most ``delay``
no window holds an input together with its echo, so no gradient ever links them.
"""

import torch

from seqexp.data.datamodule import StreamDataModule
from seqexp.data.spec import DataSpec
from seqexp.errors import ConfigError


def echo_series(n_points: int, delay: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)``, each ``(n_points, 1)``: inputs random signs (-1 or +1, one bit a step),
    ``targets[t] = inputs[t - delay]`` plus Gaussian noise of std ``noise`` (0 for the first ``delay``
    steps, which have nothing to echo yet)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 2, (n_points, 1), generator=generator).float() * 2 - 1
    targets = torch.zeros_like(inputs)
    targets[delay:] = inputs[: n_points - delay]
    if noise > 0:
        targets = targets + noise * torch.randn(n_points, 1, generator=generator)
    return inputs, targets


class EchoDataModule(StreamDataModule):
    """A random series and its echo, cut into a training stretch and the held-out stretch after it."""

    def __init__(
        self,
        *,
        delay: int,
        noise: float,
        n_points: int,
        val_fraction: float,
        batch_size: int | None,
        seq_length: int,
        eval_burn_in: int,
        seed: int,
    ) -> None:
        super().__init__(batch_size, seq_length, eval_burn_in)
        if delay < 0:
            raise ConfigError(f"data.delay={delay} is invalid: it must be an integer >= 0")
        if noise < 0:
            raise ConfigError(f"data.noise={noise} is invalid: it must be >= 0")
        if not delay < n_points:
            raise ConfigError(
                f"data.n_points={n_points} is invalid: it must be larger than data.delay={delay}"
            )
        self.delay, self.noise, self.n_points, self.seed = delay, noise, n_points, seed
        self.val_fraction = val_fraction

    @property
    def spec(self) -> DataSpec:
        return DataSpec(input_size=1, output_size=1, tokens=False, eval_burn_in=self.burn_in)

    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        inputs, targets = echo_series(self.n_points, self.delay, self.noise, self.seed)
        n_train = self.n_points - int(self.n_points * self.val_fraction)
        return {
            "train": (inputs[:n_train], targets[:n_train]),
            "val": (inputs[n_train:], targets[n_train:]),
        }
