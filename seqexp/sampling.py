"""Text from a character model: the prime goes in with one forward call, then one character per step.

Everything stays on the model's device until the end: top-k, softmax and torch.multinomial (with a
seeded torch.Generator) pick each next id there, ids collect in a device tensor, and the text is
decoded once at the end. A round trip through numpy per character (as in the lecture notes) would
synchronise with the device at every step. Same seed, same text.
"""

import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from seqexp.config_checks import as_text, check_sampling_options
from seqexp.data.files import existing_file
from seqexp.data.vocab import Vocab
from seqexp.errors import ConfigError, first_line
from seqexp.models.sequence_model import SequenceModel


def next_token(
    logits: torch.Tensor, top_k: int | None, temperature: float, generator: torch.Generator
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
    top_k: int | None = None,
    temperature: float = 1.0,
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
    torch.backends.mkldnn.enabled = False
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
    vocab: Vocab,
    prime: str,
    length: int,
    top_k: int | None = None,
    temperature: float = 1.0,
    seed: int = 0,
) -> str:
    """``prime`` followed by ``length`` sampled characters; the options are checked by the caller
    (:func:`seqexp.config_checks.check_sampling_options`). The model's train/eval mode is restored."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        ids = generate(model, vocab.encode(prime).to(device), length, top_k, temperature, generator)
    finally:
        model.train(was_training)
    return prime + vocab.decode(ids)


def load_char_model(path: str, device: torch.device) -> tuple[SequenceModel, Vocab]:
    """The model and vocabulary of a checkpoint written by scripts/train.py, on ``device``.

    Checkpoints hold plain containers only, so they load with ``weights_only=True``: nothing in the file
    can run code. ``map_location`` brings a model trained on a GPU onto any device.
    """
    expected = (
        "a checkpoint written by scripts/train.py, e.g. outputs/runs/<date>/<time>/checkpoints/last.ckpt"
    )
    file = existing_file(path, "ckpt", expected)
    try:
        checkpoint = torch.load(file, map_location=device, weights_only=True)
        hparams, data = checkpoint["hyper_parameters"], checkpoint["hyper_parameters"]["data"]
    except Exception as error:  # whatever torch.load or the lookups raise, the file is not a checkpoint
        raise ConfigError(
            f"ckpt={path!r} is not a readable checkpoint of scripts/train.py ({first_line(error)})"
        ) from None
    if not data.get("tokens"):
        raise ConfigError(
            f"ckpt={path!r} holds a model of float data (e.g. sine): sampling needs a text model"
        )
    try:
        # The same construction as SequenceLightningModule, without importing Lightning (seconds).
        model = SequenceModel(
            **hparams["model"], input_size=data["input_size"], output_size=data["output_size"], tokens=True
        )
        # The LightningModule holds the SequenceModel as ``model``, hence the prefix of its weights.
        weights = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
        model.load_state_dict(weights)
        vocab = Vocab(data["vocab"])
    except Exception as error:  # mismatched or missing weights, a broken vocabulary: a corrupt file
        raise ConfigError(f"ckpt={path!r} is not a consistent checkpoint ({first_line(error)})") from None
    return model.to(device).eval(), vocab


def choose_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is invalid: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} is not available on this machine: use device=cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"device={name!r} does not exist: this machine has cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    return device


def sample_from_config(cfg: DictConfig) -> str:
    """The sample task (conf/sample.yaml): load ``cfg.ckpt``, sample, print and optionally save."""
    model, vocab = load_char_model(cfg.ckpt, choose_device(cfg.device))
    prime = as_text(cfg.prime)
    check_sampling_options(prime, cfg.length, cfg.top_k, cfg.temperature, vocab.chars)
    text = sample_text(model, vocab, prime, cfg.length, cfg.top_k, cfg.temperature, cfg.seed)
    if cfg.out:
        Path(cfg.out).expanduser().write_text(text, encoding="utf-8")
    sys.stdout.write(text + "\n")
    return text
