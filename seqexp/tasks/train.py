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
    """Seed, then instantiate ``(datamodule, module, trainer)`` from a checked configuration."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from seqexp.module import SequenceLightningModule
    from seqexp.optimization import check_optimization

    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates: noise a user can do nothing about.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values()]
    if not cfg.trainer.enable_progress_bar:  # Lightning refuses a progress-bar callback with the bar off
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    loggers = [instantiate(logger) for logger in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    datamodule.check_streams(trainer.world_size, trainer.limit_val_batches)

    spec = datamodule.spec
    module = SequenceLightningModule(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        data=spec.as_dict(),
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True),
    )
    check_optimization(module.hparams.optim, module.hparams.scheduler)
    if cfg.compile:
        module.model.compile()  # in place, so checkpoints keep the plain parameter names
    return datamodule, module, trainer


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


# How a run is executed, not what it trains: left out of the HPARAMS tab.
PLUMBING = ("trainer", "callbacks", "logger", "paths", "hydra")


def _flat_hparams(cfg: DictConfig) -> dict[str, object]:
    """The knobs to compare runs by, for the HPARAMS tab: every scalar of the config as ``group.key``
    (``_target_`` and other Hydra keys left out) and the option chosen in each config group, so that a
    new key or group shows up without a change here."""
    container = OmegaConf.to_container(cfg, resolve=True)
    flat = {key: value for key, value in _scalar_leaves(container) if key.split(".")[0] not in PLUMBING}
    if HydraConfig.initialized():
        for group, option in HydraConfig.get().runtime.choices.items():
            if option is not None and group.split("/")[0] not in PLUMBING:
                flat[group] = option
    return flat


def _scalar_leaves(node: object, prefix: str = "") -> list[tuple[str, object]]:
    """``(dotted key, value)`` for every str/number/bool/None below ``node``; lists are not knobs."""
    if not isinstance(node, dict):
        return [(prefix, node)] if not isinstance(node, list) else []
    leaves = []
    for key, value in node.items():
        if not str(key).startswith("_"):
            leaves += _scalar_leaves(value, f"{prefix}.{key}" if prefix else str(key))
    return leaves
