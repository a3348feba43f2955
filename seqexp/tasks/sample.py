"""The sample task (conf/sample.yaml): a checkpoint's model writes text from a prime."""

import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from seqexp.app.devices import choose_device
from seqexp.checkpoints import model_from_checkpoint, read_checkpoint, require_finite_weights
from seqexp.data.tokenizer import TextTokenizer, text_tokenizer
from seqexp.errors import ConfigError
from seqexp.models.sequence_model import SequenceModel
from seqexp.sampling import sample_text
from seqexp.sampling_options import as_text, check_sampling_options


def load_text_model(path: str, device: torch.device) -> tuple[SequenceModel, TextTokenizer]:
    """The text model of the checkpoint ``path`` (a file or a run folder) and its tokenizer, which the
    checkpoint holds: no corpus is read."""
    checkpoint = read_checkpoint(path, device=device)
    if not checkpoint["hyper_parameters"]["data"].get("tokens"):
        raise ConfigError(
            f"ckpt={path!r} holds a model of float data (e.g. sine): sampling needs a text model"
        )
    model, spec = model_from_checkpoint(checkpoint, path=path)
    require_finite_weights(model, path=path)
    return model, text_tokenizer(spec)


def sample(cfg: DictConfig) -> str:
    """Load ``cfg.ckpt``, sample, print and optionally save the text."""
    model, tokenizer = load_text_model(cfg.ckpt, choose_device(cfg.device))
    prime = as_text(cfg.prime)
    check_sampling_options(prime, cfg.length, cfg.top_k, cfg.temperature, tokenizer)
    text = sample_text(model, tokenizer, prime, cfg.length, cfg.top_k, cfg.temperature, cfg.seed)
    if cfg.out:
        Path(cfg.out).expanduser().write_text(text, encoding="utf-8")
    sys.stdout.write(text + "\n")
    return text
