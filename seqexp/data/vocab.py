"""A character vocabulary: the sorted characters of a corpus, so the same text always gives the same ids
(seqexp/data/token_file.py finds them; checkpoints carry them).

Kept free of Lightning so that sampling can load it quickly. Encoding goes through numpy code points
(one vectorised search) because a Python loop over a corpus of millions of characters takes seconds.
"""

from collections.abc import Iterable

import numpy as np
import torch


def code_points(text: str) -> np.ndarray:
    """``text`` as an array of its Unicode code points (uint32), one per character."""
    # surrogatepass: a lone surrogate (possible in a command-line argument) is encoded, then reported
    # as a character outside the vocabulary instead of failing here.
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")


class Vocab:
    """Characters in code-point order; a character's id is its position (the ``char`` tokenizer of
    seqexp/data/tokenizer.py)."""

    unit = "characters"

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars = tuple(chars)
        self._ids = {char: index for index, char in enumerate(self.chars)}
        self._codes = np.array([ord(c) for c in self.chars], dtype="<u4")
        if len(self.chars) == 0 or np.any(np.diff(self._codes.astype(np.int64)) <= 0):
            raise ValueError("a vocabulary is a non-empty sequence of distinct characters in sorted order")

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """``text`` as a 1-D tensor of ids (int64); ValueError if it has characters outside the vocabulary."""
        codes = code_points(text)
        ids = np.searchsorted(self._codes, codes)
        found = self._codes[np.minimum(ids, len(self._codes) - 1)] == codes
        if not found.all():
            raise ValueError(f"{int((~found).sum())} character(s) outside the vocabulary")
        return torch.from_numpy(ids.astype(np.int64))

    def unencodable(self, text: str) -> str | None:
        """Why ``text`` cannot be encoded (characters outside the vocabulary), or None."""
        unknown = [c for c in dict.fromkeys(text) if c not in self._ids]
        if not unknown:
            return None
        return (
            f"has characters outside the model's vocabulary: {', '.join(map(repr, unknown))}; the "
            f"vocabulary is {''.join(self.chars)!r}"
        )

    def char_lengths(self) -> torch.Tensor:
        """Each id's length in characters: one (float64, as for the tokenizers whose pieces vary)."""
        return torch.ones(len(self), dtype=torch.float64)

    def decode(self, ids: torch.Tensor | Iterable[int]) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)
