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
    # A float series read from a table (data=series, seqexp/data/series.py): every column it uses (the
    # inputs first), which of them the model reads and which it predicts, and the scaling fitted on the
    # training split, value = scaled * scale + offset, so that metrics and forecasts are in the data's units.
    columns: tuple[str, ...] = ()
    inputs: tuple[int, ...] = ()
    targets: tuple[int, ...] = ()
    scale: tuple[float, ...] = ()
    offset: tuple[float, ...] = ()
    # The model reads and predicts the changes from row to row (data.difference), scaled as above.
    differenced: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain containers only (sequences as lists), so a checkpoint holding it loads with
        ``weights_only=True``."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DataSpec":
        fields: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value for key, value in values.items()
        }
        return cls(**fields)
