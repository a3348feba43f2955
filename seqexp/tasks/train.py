"""The train task: check the config, then seed -> data -> model -> callbacks/loggers -> trainer -> fit
-> test, and return the best validation loss (the objective Hydra sweepers minimize).

A run whose validation loss is NaN or inf (it diverged) returns inf rather than failing: an optimizer
such as Optuna ranks it last and the search goes on, whereas NaN would poison its comparisons.

Heavy packages (torch, Lightning) are imported inside :func:`train`, after the configuration has been
checked, so a mistyped value is reported in about a second.
"""

import math
import warnings
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seqexp.app.config_checks import check_train_config
from seqexp.errors import ConfigError, first_line

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from seqexp.data.datamodule import StreamDataModule
    from seqexp.module import SequenceLightningModule


def size_advice(parameters: int, train_items: int, unit: str = "items") -> str:
    """The notes' rule of thumb: parameters and training items should be of the same order of magnitude."""
    ratio = parameters / max(train_items, 1)
    verdict = f"model size: {parameters:,} parameters for {train_items:,} training {unit} (ratio {ratio:.2g})"
    if ratio > 10:
        return (
            f"{verdict}: the model is much larger than the data and will overfit; use a smaller "
            "model.hidden_size / model.num_layers, more dropout, or more data"
        )
    if ratio < 0.1:
        return (
            f"{verdict}: the model is much smaller than the data and will underfit; a larger "
            "model.hidden_size / model.num_layers can likely do better"
        )
    return f"{verdict}: the same order of magnitude, as the notes advise"


def build(cfg: DictConfig) -> tuple["StreamDataModule", "SequenceLightningModule", "pl.Trainer"]:
    """Seed, then instantiate ``(datamodule, module, trainer)`` from a checked configuration.

    Everything that can be judged before training is judged here, as a ConfigError: the arguments of
    every constructor against its type hints, the Trainer's own validation, whether the model fits in
    memory and whether the data gives the Trainer what it was asked for.
    """
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from seqexp.app.argument_types import check_arguments
    from seqexp.models.size import check_model_fits
    from seqexp.module import SequenceLightningModule

    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates: noise a user can do nothing about.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    check_arguments("model", cfg.model, target="seqexp.models.sequence_model.SequenceModel")
    for key in ("data", "trainer"):
        check_arguments(key, cfg[key])
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node:
                check_arguments(f"{group}.{name}", node)
    datamodule = instantiate(cfg.data)
    # A preset turns a callback off by setting it to null (debug=fast: callbacks.checkpoint: null).
    callbacks = [instantiate(callback) for callback in (cfg.get("callbacks") or {}).values() if callback]
    if not cfg.trainer.enable_progress_bar:  # Lightning refuses a progress-bar callback with the bar off
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    loggers = [instantiate(logger) for logger in (cfg.get("logger") or {}).values() if logger]
    trainer = _instantiate_trainer(cfg.trainer, callbacks, loggers)
    datamodule.check_streams(trainer)

    spec = datamodule.spec
    model_options = OmegaConf.to_container(cfg.model, resolve=True)
    check_model_fits(model_options, spec, trainer.strategy.root_device)
    module = SequenceLightningModule(
        model=model_options,
        data=spec.as_dict(),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
    )
    if cfg.compile:
        module.model.compile()  # in place, so checkpoints keep the plain parameter names
    return datamodule, module, trainer


def _instantiate_trainer(trainer_cfg: DictConfig, callbacks: list, loggers: list) -> "pl.Trainer":
    """The Trainer, or ConfigError with the first line of the Trainer's own refusal."""
    import torch
    from hydra.utils import instantiate

    accelerator = trainer_cfg.get("accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} but this machine has no GPU that torch can use: "
            "use trainer=cpu (or trainer=auto, which takes a GPU where there is one)"
        )
    try:
        return instantiate(trainer_cfg, callbacks=callbacks, logger=loggers)
    except Exception as error:  # Hydra wraps the Trainer's own refusal; the cause is the message
        from lightning_fabric.utilities.exceptions import MisconfigurationException

        cause = error.__cause__ or error
        if not isinstance(cause, ValueError | TypeError | MisconfigurationException):
            raise
        raise ConfigError(
            f"the Trainer refused its arguments: {first_line(cause).split(': ', 1)[-1]}"
        ) from None


def train(cfg: DictConfig) -> float:
    """Fit the configured model and return its best validation loss (inf if the run diverged)."""
    check_train_config(cfg)

    from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

    from seqexp.app.hydra_ddp import ddp_job_scope, start_ddp_ranks_from_the_job_config

    datamodule, module, trainer = build(cfg)
    if HydraConfig.initialized():
        start_ddp_ranks_from_the_job_config()
    parameters = module.parameter_count()
    rank_zero_info(size_advice(parameters, len(datamodule.splits["train"]), datamodule.item_name))
    # Logged as a scalar so that reports compare model sizes without rebuilding the models.
    for logger in trainer.loggers:
        logger.log_metrics({"model/parameters": parameters}, step=0)

    with ddp_job_scope():
        metrics = _fit_and_test(cfg, trainer, module, datamodule)
    for logger in trainer.loggers:
        logger.log_hyperparams(_flat_hparams(cfg), metrics)
        logger.finalize("success")
    best, final = metrics["hp/best_val_loss"], metrics["hp/final_val_loss"]
    rank_zero_info(f"best val/loss {best:.6g}, final val/loss {final:.6g}")
    if not math.isfinite(best):
        rank_zero_warn(f"the run diverged (best val/loss {best}): its objective is inf")
        return math.inf
    return best


def _fit_and_test(
    cfg: DictConfig, trainer: "pl.Trainer", module: "SequenceLightningModule", datamodule: "StreamDataModule"
) -> dict[str, float]:
    """Fit, then test with the best checkpoint where the data has a test split; the final metrics."""
    trainer.fit(module, datamodule=datamodule)
    if "val/loss" not in trainer.callback_metrics:  # max_steps ended fit before its first validation
        trainer.validate(module, datamodule=datamodule, verbose=False)
    checkpoint = trainer.checkpoint_callback
    final = _as_float(trainer.callback_metrics.get("val/loss"))
    best = _as_float(checkpoint.best_model_score) if checkpoint else math.nan
    metrics = {"hp/best_val_loss": final if math.isnan(best) else best, "hp/final_val_loss": final}
    if cfg.test_after_fit and datamodule.has_test:
        ckpt_path = "best" if checkpoint and checkpoint.best_model_path else None
        results = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics["hp/test_loss"] = results[0]["test/loss"]
    return metrics


def _as_float(value: object) -> float:
    return math.nan if value is None else float(value)


def _flat_hparams(cfg: DictConfig) -> dict[str, object]:
    """The knobs worth comparing runs by, flattened to ``group.key`` scalars for the HPARAMS tab."""
    flat: dict[str, object] = {k: cfg[k] for k in ("seed", "seq_length", "clip", "clip_algorithm")}
    for group in ("model", "optim", "data"):
        for key, value in OmegaConf.to_container(cfg[group], resolve=True).items():
            if not isinstance(value, dict | list) and not key.startswith("_"):
                flat[f"{group}.{key}"] = value
    flat["data"] = cfg.data._target_.rsplit(".", 1)[-1]
    return flat
