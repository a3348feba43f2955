"""The options of a text sample (prime, length, top_k, temperature), checked where they are given: by
config_checks for scripts/sample.py, and by the text-sample callback for its own. Torch-free, so that a
bad option is answered before torch loads."""

from collections.abc import Sequence
from typing import Any

from seqexp.errors import ConfigError, is_int, is_number, require


def as_text(value: Any) -> Any:
    """Hydra reads ``prime=123`` as a number; a prime is text. Other values pass through to be checked."""
    return str(value) if is_number(value) else value


def check_sampling_options(
    prime: Any,
    length: Any,
    top_k: Any,
    temperature: Any,
    vocab: Sequence[str] | None = None,
    prefix: str = "",
) -> None:
    """Raise ConfigError for the first invalid sampling option (keys named ``<prefix>prime`` etc.).

    The checks that need the model's vocabulary (top_k at most its size, the prime's characters in it)
    run only when ``vocab`` is given.
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
    if vocab is None:
        return
    if top_k is not None and top_k > len(vocab):
        raise ConfigError(
            f"{prefix}top_k={top_k} is invalid: the vocabulary has {len(vocab)} characters, so it must be "
            f"between 1 and {len(vocab)} (or null for all of them)"
        )
    known = set(vocab)
    unknown = [c for c in dict.fromkeys(prime) if c not in known]
    if unknown:
        raise ConfigError(
            f"{prefix}prime={prime!r} has characters outside the model's vocabulary: "
            f"{', '.join(map(repr, unknown))}; the vocabulary is {''.join(vocab)!r}"
        )
