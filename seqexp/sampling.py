"""Text from a model of text: the prime goes in with one forward call, then one token per step.

Everything stays on the model's device until the end: top-k, softmax and torch.multinomial (with a
seeded torch.Generator) pick each next id there, ids collect in a device tensor, and the text is
decoded once at the end. A round trip through numpy per character (as in the lecture notes) would
synchronise with the device at every step. Same seed, same text.
"""

import torch

from seqexp.data.tokenizer import TextTokenizer
from seqexp.models.sequence_model import SequenceModel, evaluating


def next_token(
    logits: torch.Tensor, top_k: int | None, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One id (shape ``(1,)``) drawn from ``softmax(logits / temperature)`` restricted to the top k."""
    scaled = logits / temperature
    if top_k is not None and top_k < scaled.numel():
        values, indices = scaled.topk(top_k)
        return indices[torch.multinomial(values.softmax(-1), 1, generator=generator)]
    return torch.multinomial(scaled.softmax(-1), 1, generator=generator)


@torch.no_grad()
def generate(
    model: SequenceModel,
    prime: torch.Tensor,
    length: int,
    top_k: int | None,
    temperature: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``length`` ids that follow the 1-D ids ``prime``, on the device of ``prime``. The caller puts the
    model in eval mode (dropout off)."""
    ids = torch.empty(length, dtype=torch.long, device=prime.device)
    if length == 0:
        return ids
    logits, state = model(prime.view(1, -1))  # the whole prime in one call: one pass of the cell
    logits = logits[0, -1]
    # oneDNN's CPU LSTM pays a fixed cost per call that dwarfs a one-character step (2x512, batch 1:
    # 17 ms against 2.4 ms without it, measured here); steps of one character go without it.
    # (Set and restored by hand: the signature of torch.backends.mkldnn.flags varies across versions.)
    onednn = torch.backends.mkldnn.enabled
    # torch declares the flag as its descriptor (ContextProp); at run time it reads and takes a bool.
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
    try:
        for step in range(length):
            token = next_token(logits, top_k, temperature, generator)
            ids[step : step + 1] = token
            if step + 1 < length:
                logits, state = model(token.view(1, 1), state)
                logits = logits[0, -1]
    finally:
        torch.backends.mkldnn.enabled = onednn
    return ids


def sample_text(
    model: SequenceModel,
    tokenizer: TextTokenizer,
    prime: str,
    length: int,
    top_k: int | None,
    temperature: float,
    seed: int,
) -> str:
    """``prime`` followed by the text of ``length`` sampled tokens; the options are checked by the caller
    (:func:`seqexp.sampling_options.check_sampling_options`). The model's train/eval mode is restored."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    with evaluating(model):
        ids = generate(model, tokenizer.encode(prime).to(device), length, top_k, temperature, generator)
    return prime + tokenizer.decode(ids)
