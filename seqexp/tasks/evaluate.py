"""The eval task (conf/eval.yaml): a checkpoint's model scored on a split, as its training run scored it.

The run's own data config (``<run dir>/.hydra/config.yaml``) is reused unless another is chosen, the
burn-in is the checkpoint's, and the rows are as many as the run's processes had together, so the
number matches the run's val/loss. The windows are scored by the same LightningModule code as in
training (``trainer.validate`` / ``trainer.test``). Another corpus is re-encoded with a character
model's vocabulary; one with characters the model never saw is refused. A word or bpe model scores only
text its own tokenizer cut: the data must give the same tokenizer (the run's corpus and settings).
"""

import json
import math
from pathlib import Path
from typing import Any, cast

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seqexp.app.config_checks import check_data_config
from seqexp.app.devices import choose_device
from seqexp.checkpoints import model_from_checkpoint, read_checkpoint, require_finite_weights
from seqexp.data.spec import DataSpec
from seqexp.data.tokenizer import described
from seqexp.errors import ConfigError
from seqexp.run_layout import CHECKPOINT_DIR, SAVED_CONFIG, checkpoint_file

SPLITS = ("val", "test")


def check_eval_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first invalid value of an eval configuration, before torch runs."""
    if OmegaConf.is_missing(cfg, "ckpt") or not cfg.ckpt:
        raise ConfigError("ckpt is missing: pass ckpt=PATH, a checkpoint or a run folder of scripts/train.py")
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is invalid: it must be one of {', '.join(SPLITS)}")
    if cfg.out:
        out = Path(str(cfg.out)).expanduser()
        if out.is_dir() or not out.resolve().parent.is_dir():
            raise ConfigError(f"out={cfg.out!r} must be a file in an existing folder, e.g. metrics.json")


def run_config(ckpt: Path) -> DictConfig | None:
    """The saved config of the run that wrote ``ckpt`` (``<run>/checkpoints/x.ckpt``), if it is there."""
    saved = ckpt.parent.parent / SAVED_CONFIG
    if ckpt.parent.name == CHECKPOINT_DIR and saved.is_file():
        return cast(DictConfig, OmegaConf.load(saved))  # Hydra saves the composed config: a mapping
    return None


def data_config(cfg: DictConfig, run: DictConfig | None) -> DictConfig:
    """The data config to evaluate on: the run's, changed by ``+data.KEY=...``, or a chosen data group."""
    chosen = cast(dict[str, Any], OmegaConf.to_container(cfg.data, resolve=False)) if cfg.get("data") else {}
    if run is None and "_target_" not in chosen:
        raise ConfigError(
            f"ckpt={cfg.ckpt!r} is not in a run folder with its {SAVED_CONFIG}: choose the data, "
            "e.g. data=text data.path=FILE"
        )
    root = OmegaConf.create(
        cast(dict[str, Any], OmegaConf.to_container(run, resolve=False)) if run is not None else {}
    )
    for key in ("seq_length", "seed"):
        if cfg.get(key) is not None or key not in root:
            root[key] = cfg.get(key)
    if "paths" not in root or "_target_" in chosen:
        root["paths"] = OmegaConf.to_container(cfg.paths, resolve=False)
    OmegaConf.update(root, "data", chosen, merge="_target_" not in chosen)
    check_data_config(root.data)  # a +data.KEY=... of eval's is checked as train checks the run's
    return root.data


def processes(run: DictConfig | None) -> int:
    """How many processes shared the rows in training: devices x nodes where they were numbers."""
    if run is None:
        return 1
    devices, nodes = run.trainer.get("devices"), run.trainer.get("num_nodes", 1)
    return (devices if isinstance(devices, int) and devices > 0 else 1) * (
        nodes if isinstance(nodes, int) else 1
    )


def encode_with_model_tokenizer(datamodule: Any, data_spec: DataSpec, spec: DataSpec, ckpt: str) -> None:
    """Give the datamodule's splits the model's ids: a character model's vocabulary re-encodes them; a
    word or bpe model needs the very tokenizer the data was cut with."""
    if spec.tokenizer is None and data_spec.tokenizer is None:
        encode_with_model_vocab(datamodule, spec.vocab)
    elif spec.tokenizer != data_spec.tokenizer:
        ours, theirs = described(spec), described(data_spec)
        other = " learnt from other text" if ours == theirs else ""
        raise ConfigError(
            f"ckpt={ckpt!r} reads {ours}, but the data gives {theirs}{other}: evaluate on the corpus "
            "the run trained on, with its data.tokenizer and data.vocab_size (the run's data config)"
        )


def encode_with_model_vocab(datamodule: Any, vocab: tuple[str, ...]) -> None:
    """Re-encode the datamodule's splits with the model's vocabulary (another corpus's ids differ)."""
    corpus = datamodule.tokenizer.chars
    known = {char: index for index, char in enumerate(vocab)}
    unknown = [char for char in corpus if char not in known]
    if unknown:
        raise ConfigError(
            f"data.path={datamodule.path!r} has {len(unknown)} character(s) the model does not know "
            f"({', '.join(map(repr, unknown[:10]))}): evaluate on text of the model's vocabulary "
            f"{''.join(vocab)!r}"
        )
    mapping = torch.tensor([known[char] for char in corpus])
    # Token files hold compact ids (uint8 would index as a mask): look them up as int64.
    datamodule.splits = {split: mapping[ids.long()] for split, ids in datamodule.splits.items()}


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.ckpt`` on ``cfg.split``; print the metrics (and write them to ``cfg.out``)."""
    check_eval_config(cfg)
    import logging
    import warnings

    import pytorch_lightning as pl

    # stdout is for the metrics and stderr for problems: Lightning's hardware notes are neither.
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

    from seqexp.module import SequenceLightningModule

    device = choose_device(cfg.device)
    file = checkpoint_file(cfg.ckpt)
    checkpoint = read_checkpoint(file, device=device)
    model, spec = model_from_checkpoint(checkpoint, path=cfg.ckpt)
    require_finite_weights(model, path=cfg.ckpt)
    run = run_config(file)
    datamodule = instantiate(data_config(cfg, run))
    # One process, the run's rows: the same windows (a null batch_size fits the data as training did).
    datamodule.batch_size = datamodule.fit_batch_size(processes(run)) * processes(run)
    datamodule.setup()
    data_spec = datamodule.spec
    if data_spec.tokens != spec.tokens:
        kind = "text" if spec.tokens else "a float series"
        raise ConfigError(f"ckpt={cfg.ckpt!r} holds a model of {kind}: choose data of that kind")
    if spec.tokens:
        encode_with_model_tokenizer(datamodule, data_spec, spec, cfg.ckpt)
    if cfg.split not in datamodule.splits:
        raise ConfigError(
            f"split={cfg.split}: the data has no {cfg.split} split; hold one out with +data.test_fraction=0.1"
        )
    windows = len(datamodule._window_stream(cfg.split))
    if windows <= spec.eval_burn_in:
        raise ConfigError(
            f"the {cfg.split} split gives {windows} window(s), none after the model's burn-in of "
            f"{spec.eval_burn_in}: use a longer split or smaller data.batch_size / seq_length"
        )

    hparams = checkpoint["hyper_parameters"]
    module = SequenceLightningModule(model=hparams["model"], data=hparams["data"], optim=hparams["optim"])
    module.model = model
    trainer = pl.Trainer(
        accelerator=device.type, devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    run_split = trainer.validate if cfg.split == "val" else trainer.test
    scores = run_split(module, datamodule=datamodule, verbose=False)[0]
    metrics: dict[str, Any] = {name.split("/", 1)[1]: float(value) for name, value in scores.items()}
    metrics.update(
        ckpt=str(file), split=cfg.split, windows=windows, burn_in=spec.eval_burn_in,
        rows=datamodule.batch_size, seq_length=datamodule.seq_length,
    )  # fmt: skip
    names = ("loss", "bpc", "ppl") if spec.tokens else ("loss", "mse")
    print(
        " ".join(f"{cfg.split}/{name} {metrics[name]:.6g}" for name in names if math.isfinite(metrics[name]))
    )
    if cfg.out:
        Path(str(cfg.out)).expanduser().write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
