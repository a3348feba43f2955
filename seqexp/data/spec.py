"""What a model must know about its data, with no Lightning import: checkpoints carry it as a dict."""

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DataSpec:
    """What the model must know about the data: sizes come from here, never from YAML."""

    input_size: int  # features per float item, or vocabulary size for tokens
    output_size: int
    tokens: bool  # token ids (cross-entropy) rather than floats (MSE)
    vocab: tuple[str, ...] = ()  # a character model's vocabulary (data.tokenizer=char)
    # A word or bpe model's tokenizer, as tokenizers' JSON (seqexp/data/tokenizer.py); None: characters.
    tokenizer: str | None = None
    # The characters an <unk> of a word model counts for in val/bpc: the mean length of the words it replaced.
    unknown_chars: float = 0.0
    # Leading windows of each evaluation run that only warm up the state (from zeros) and are not scored.
    eval_burn_in: int = 0
    # A corpus's sha256 (text data): a resume on other text with the same characters is refused by it.
    source_sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain containers only (the vocabulary as a list), so a checkpoint holding it loads with
        ``weights_only=True``."""
        return {**asdict(self), "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DataSpec":
        return cls(**{**values, "vocab": tuple(values.get("vocab", ()))})
