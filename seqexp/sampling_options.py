"""The options of a text sample (prime, length, top_k, temperature), checked where they are given: by
config_checks for scripts/sample.py, and by the text-sample callback for its own. Torch-free, so that a
bad option is answered before torch loads."""

from typing import TYPE_CHECKING, Any

from seqexp.errors import ConfigError, is_int, is_number, require

if TYPE_CHECKING:
    from seqexp.data.tokenizer import TextTokenizer


def as_text(value: Any) -> Any:
    """Hydra reads ``prime=123`` as a number; a prime is text. Other values pass through to be checked."""
    return str(value) if is_number(value) else value


def check_sampling_options(
    prime: Any,
    length: Any,
    top_k: Any,
    temperature: Any,
    tokenizer: "TextTokenizer | None" = None,
    prefix: str = "",
) -> None:
    """Raise ConfigError for the first invalid sampling option (keys named ``<prefix>prime`` etc.).

    The checks that need the model's tokenizer (top_k at most its vocabulary's size, a prime it can
    encode) run only when ``tokenizer`` is given.
    """
    require(f"{prefix}prime", prime, lambda v: isinstance(v, str) and v != "", "a non-empty string")
    require(f"{prefix}length", length, lambda v: is_int(v) and v >= 0, "an integer >= 0")
    require(f"{prefix}temperature", temperature, lambda v: is_number(v) and v > 0, "a number > 0")
    require(
        f"{prefix}top_k",
        top_k,
        lambda v: v is None or (is_int(v) and v >= 1),
        "an integer >= 1 (1 is greedy), or null for the whole vocabulary",
    )
    if tokenizer is None:
        return
    size = len(tokenizer)
    if top_k is not None and top_k > size:
        raise ConfigError(
            f"{prefix}top_k={top_k} is invalid: the vocabulary has {size} {tokenizer.unit}, so it must be "
            f"between 1 and {size} (or null for all of them)"
        )
    if (why := tokenizer.unencodable(prime)) is not None:
        raise ConfigError(f"{prefix}prime={prime!r} {why}")
