"""At each validation, a text sample from a fixed prime and seed, in every logger that takes text."""

import itertools
from typing import TYPE_CHECKING, cast

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from seqexp.data.tokenizer import TextTokenizer, text_tokenizer
from seqexp.sampling import sample_text
from seqexp.sampling_options import as_text, check_sampling_options
from seqexp.trackers.run_log import run_log, validation_log_step

if TYPE_CHECKING:
    from seqexp.data.datamodule import StreamDataModule

    # The module every run trains. Lightning passes it as a LightningModule, whose attributes it does not
    # declare (nn.Module types them all as Tensor | Module): the hooks cast it.
    from seqexp.module import SequenceLightningModule

KEY = "callbacks.text_sample."  # where conf/callbacks/default.yaml puts this callback, for messages
DEFAULT_PRIME = "The"
PRIME_SEARCH = 10_000  # held-out positions tried for a default prime the model can read


def _set_on_the_command_line(option: str) -> bool:
    """Whether the user typed ``callbacks.text_sample.<option>=...``: a default adapts to the corpus, a
    value the user chose is checked instead. (Built outside Hydra, by code, a value counts as chosen.)"""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return True
    typed = (override.lstrip("+~").split("=", 1)[0] for override in HydraConfig.get().overrides.task)
    return f"{KEY}{option}" in typed


class TextSample(pl.Callback):
    """Logs ``val/sample``: ``prime`` and ``length`` tokens sampled after it; nothing for float data.

    The prime and seed stay fixed, so the samples of successive validations show what training changed.
    ``prime=None`` (conf/callbacks/default.yaml's) primes with :data:`DEFAULT_PRIME` where the tokenizer
    can encode it, else with the first tokens of the held-out text, and says so in one log line: the
    sample is a nicety that must not stop training on Greek, code or DNA. A prime the user gave is
    checked instead.
    """

    def __init__(
        self,
        prime: str | None,
        length: int,
        top_k: int | None,
        temperature: float,
        seed: int,
    ) -> None:
        self.prime = None if prime is None else as_text(prime)  # Hydra reads prime=123 as a number
        check_sampling_options(self.prime or DEFAULT_PRIME, length, top_k, temperature, prefix=KEY)
        self.length = length
        self.top_k = top_k
        self.temperature = temperature
        self.seed = seed
        self.tokenizer: TextTokenizer | None = None  # the model's, set up with it

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Checked before training starts: a prime the corpus cannot encode should not end a long run.
        spec = cast("SequenceLightningModule", pl_module).spec
        if not spec.tokens:
            return
        tokenizer = self.tokenizer = text_tokenizer(spec)
        if self.prime is None:
            self.prime = self._default_prime(tokenizer, trainer)
        size = len(tokenizer)
        if self.top_k is not None and self.top_k > size and not _set_on_the_command_line("top_k"):
            # The default's 5 most likely characters are all of them in a smaller vocabulary (DNA: 4).
            rank_zero_info(f"{KEY}top_k: {size}, the whole vocabulary, rather than {self.top_k}")
            self.top_k = size
        check_sampling_options(self.prime, self.length, self.top_k, self.temperature, tokenizer, prefix=KEY)

    @staticmethod
    def _default_prime(tokenizer: TextTokenizer, trainer: pl.Trainer) -> str:
        if tokenizer.unencodable(DEFAULT_PRIME) is None:
            return DEFAULT_PRIME
        # Lightning's DataConnector sets trainer.datamodule, which Trainer does not declare.
        datamodule = cast("StreamDataModule", trainer.datamodule)  # type: ignore[attr-defined]
        held_out = datamodule.splits["val"]
        # The first few tokens of the held-out text that the tokenizer reads back (a word model's may
        # hold an <unk>), else the first vocabulary entry that it does: every character, every word.
        stretches = (
            tokenizer.decode(held_out[start : start + len(DEFAULT_PRIME)])
            for start in range(min(len(held_out), PRIME_SEARCH))
        )
        entries = (tokenizer.decode([index]) for index in range(len(tokenizer)))
        prime = next(
            text for text in itertools.chain(stretches, entries) if tokenizer.unencodable(text) is None
        )
        rank_zero_info(
            f"{KEY}prime: {prime!r}, taken from the held-out text (or the vocabulary), since the model "
            f"cannot read {DEFAULT_PRIME!r}; set {KEY}prime to choose another"
        )
        return prime

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        module = cast("SequenceLightningModule", pl_module)
        log = run_log(trainer)
        if trainer.sanity_checking or not log.shows_media or not module.spec.tokens:
            return
        assert self.prime is not None and self.tokenizer is not None, (
            "setup() sets them for a model of tokens"
        )
        text = sample_text(
            module.model,
            self.tokenizer,
            self.prime,
            self.length,
            self.top_k,
            self.temperature,
            self.seed,
        )
        log.text("val/sample", text, validation_log_step(trainer))
