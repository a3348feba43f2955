"""At each validation, a text sample from a fixed prime and seed, in TensorBoard's text tab."""

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from seqexp.app.config_checks import as_text, check_sampling_options
from seqexp.callbacks.tensorboard import tensorboard_writer
from seqexp.data.vocab import Vocab
from seqexp.sampling import sample_text

KEY = "callbacks.text_sample."  # where conf/callbacks/default.yaml puts this callback, for messages


class TextSample(pl.Callback):
    """Logs ``val/sample``: ``prime`` and ``length`` characters sampled after it; nothing for float data.

    The prime and seed stay fixed, so the samples of successive validations show what training changed.
    """

    def __init__(
        self,
        prime: str = "The",
        length: int = 300,
        top_k: int | None = 5,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.prime = as_text(prime)  # Hydra reads callbacks.text_sample.prime=123 as a number
        self.length = length
        self.top_k = top_k
        self.temperature = temperature
        self.seed = seed

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Checked before training starts: a prime the corpus cannot encode should not end a long run.
        spec = pl_module.spec
        if spec.tokens:
            check_sampling_options(
                self.prime, self.length, self.top_k, self.temperature, spec.vocab, prefix=KEY
            )

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if trainer.sanity_checking or writer is None or not pl_module.spec.tokens:
            return
        text = sample_text(
            pl_module.model,
            Vocab(pl_module.spec.vocab),
            self.prime,
            self.length,
            self.top_k,
            self.temperature,
            self.seed,
        )
        # TensorBoard renders text as Markdown; indenting every line makes it a code block, which keeps
        # line breaks and shows characters such as * and # as they are.
        writer.add_text(
            "val/sample", "\n".join(f"    {line}" for line in text.split("\n")), trainer.global_step
        )
