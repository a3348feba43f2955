"""The train task: check the config, then seed -> data -> model -> callbacks/loggers -> trainer -> fit
-> test, and return the best validation loss (the objective Hydra sweepers minimize).

Heavy packages (torch, Lightning) are imported inside :func:`train`, after the configuration has been
checked, so a mistyped value is reported in about a second.
"""

import logging
import math

from omegaconf import DictConfig, OmegaConf

from seqexp.config_checks import check_train_config

log = logging.getLogger(__name__)


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


def train(cfg: DictConfig) -> float:
    """Fit the configured model and return its best validation loss."""
    check_train_config(cfg)

    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from seqexp.module import SequenceLightningModule

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values()]
    loggers = [instantiate(logger) for logger in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    datamodule.check_streams(trainer.world_size)

    spec = datamodule.spec
    module = SequenceLightningModule(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        data={**spec.__dict__, "vocab": list(spec.vocab)},
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
    )
    log.info(size_advice(module.parameter_count(), len(datamodule.splits["train"]), datamodule.item_name))

    trainer.fit(module, datamodule=datamodule)
    checkpoint = trainer.checkpoint_callback
    best = _as_float(checkpoint.best_model_score) if checkpoint else math.nan
    final = _as_float(trainer.callback_metrics.get("val/loss"))
    if math.isnan(best):
        best = final

    metrics = {"hp/best_val_loss": best, "hp/final_val_loss": final}
    if cfg.test_after_fit and datamodule.has_test:
        ckpt_path = "best" if checkpoint and checkpoint.best_model_path else None
        results = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics["hp/test_loss"] = results[0]["test/loss"]
    for logger in trainer.loggers:
        logger.log_hyperparams(_flat_hparams(cfg), metrics)
        logger.finalize("success")
    log.info("best val/loss %.6g, final val/loss %.6g", best, final)
    return best


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
