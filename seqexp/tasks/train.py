"""The train task: check the config, then seed -> data -> model -> callbacks/loggers -> trainer -> fit
-> test, and return the best validation loss (the objective Hydra sweepers minimize; per character for
text, whatever a token is).

A run whose validation loss is NaN or inf (it diverged) returns inf rather than failing: an optimizer
such as Optuna ranks it last and the search goes on, whereas NaN would poison its comparisons.

Heavy packages (torch, Lightning) are imported inside :func:`train`, after the configuration has been
checked, so a mistyped value is reported in about a second.
"""

import math
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from seqexp.app.cli import in_multirun
from seqexp.app.cluster import check_world, launched_process
from seqexp.app.config_checks import check_train_config
from seqexp.app.host_memory import reuse_freed_memory
from seqexp.app.run_status import run_recorded
from seqexp.errors import STOP_SIGNALS, ConfigError, JobNotStarted, RunFailed, RunInterrupted, first_line
from seqexp.run_layout import CHECKPOINT_DIR, LAST

if TYPE_CHECKING:
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import Logger

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
    from seqexp.callbacks.exact_resume import AlignedLoggingStep, ExactResume
    from seqexp.callbacks.time_budget import FollowTimeBudget
    from seqexp.models.size import check_model_fits
    from seqexp.module import SequenceLightningModule
    from seqexp.optimization import check_optimization
    from seqexp.trackers.files import MetricsFile
    from seqexp.trackers.run_log import announce_what_loggers_miss, metrics_file

    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates: noise a user can do nothing about.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Lightning's model summary cannot size a bf16 run's weights: noise, since only its table shows the size.
    warnings.filterwarnings("ignore", message=r"Precision .* is not supported by the model summary")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    check_arguments("model", cfg.model, target="seqexp.models.sequence_model.SequenceModel")
    for key in ("data", "trainer"):
        check_arguments(key, cfg[key])
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node:
                check_arguments(f"{group}.{name}", node)
    optim = cast(dict[str, Any], OmegaConf.to_container(cfg.optim, resolve=True))
    scheduler = cast(dict[str, Any], OmegaConf.to_container(cfg.scheduler, resolve=True))
    check_optimization(optim, scheduler)  # before the data is prepared, which can take minutes
    datamodule = instantiate(cfg.data)
    # A preset turns a callback off by setting it to null (debug=fast: callbacks.checkpoint: null).
    callbacks = [
        _instantiate(f"callbacks.{name}", callback)
        for name, callback in (cfg.get("callbacks") or {}).items()
        if callback
    ]
    if not cfg.trainer.enable_progress_bar:  # Lightning refuses a progress-bar callback with the bar off
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    # Not options in conf/callbacks: without them a run could not continue exactly where it stopped, or
    # anneal within its time budget. ExactResume last, so that the generators are restored after the other
    # callbacks' on_train_start; AlignedLoggingStep first, before any callback logs as a batch starts.
    callbacks = [AlignedLoggingStep(), *callbacks, ExactResume(), FollowTimeBudget()]
    chosen = (cfg.get("logger") or {}).items()
    loggers = [cast("Logger", _instantiate(f"logger.{name}", node)) for name, node in chosen if node]
    announce_what_loggers_miss(loggers)
    if metrics_file(loggers) is None:  # the run's own record, which scripts/report.py reads
        loggers.append(MetricsFile(cfg.paths.output_dir))
    trainer = _instantiate_trainer(cfg.trainer, callbacks, loggers)
    datamodule.check_streams(trainer)

    spec = datamodule.spec
    model_options = cast(dict[str, Any], OmegaConf.to_container(cfg.model, resolve=True))
    check_model_fits(model_options, spec, trainer.strategy.root_device)
    module = SequenceLightningModule(
        model=model_options,
        data=spec.as_dict(),
        optim=optim,
        scheduler=scheduler,
        divergence_factor=cfg.divergence_factor,
    )
    if cfg.compile:
        module.model.compile()  # in place, so checkpoints keep the plain parameter names
    return datamodule, module, trainer


def run_job(cfg: DictConfig) -> float:
    """The whole job of ``scripts/train.py``: a resume is checked before anything is written to the run's
    folder, then :func:`train` runs with its fate recorded in ``status.json``.

    A signal ends a single run's process with 128 + its number, after handing the signal to the handler
    that was there before (submitit's, under SLURM, which requeues the job; the requeued job finds its
    checkpoint and continues). In a sweep the job ends with RunInterrupted instead, so that the launcher
    goes on to account for the other jobs (seqexp/app/sweep_signals.py)."""
    from seqexp.app.run_folder import holding

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if not launched_process():  # a DDP rank: its launcher holds the folder
        return _run_job_in(run_dir, cfg)
    with holding(run_dir):
        return _run_job_in(run_dir, cfg)


def _run_job_in(run_dir: Path, cfg: DictConfig) -> float:
    from seqexp.app.resume import NothingToResume, check_resume, earlier_attempt, save_resumed_config
    from seqexp.app.sweep_signals import forward_to_jobs, mark_stopped

    check_world(cfg.trainer)
    # (A DDP rank finds its first process's status: its config says whether to resume.)
    if not cfg.resume and launched_process() and (earlier := earlier_attempt(run_dir)) is not None:
        if earlier.status in ("ok", "diverged"):
            print(f"{run_dir} finished earlier (status {earlier.status}): nothing to resume")
            return math.inf if earlier.objective is None else earlier.objective
        last = run_dir / CHECKPOINT_DIR / LAST
        with open_dict(cfg):
            cfg.resume = str(last) if last.is_file() else None  # none saved: it starts again
    if cfg.resume:
        check_train_config(cfg)
        try:
            check_resume(cfg)
        except NothingToResume as finished:
            print(finished)
            return math.nan
        if launched_process():
            save_resumed_config(cfg, run_dir)
    before = {int(signum): signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum, handler in before.items():
        # Until training starts (StopOnSignal takes over) and after it ends, there is nothing to save:
        # a stop signal ends the run at once, as interrupted. Another program's handler is left alone.
        if handler in (signal.SIG_DFL, signal.default_int_handler, forward_to_jobs):
            signal.signal(signum, _stop_now)
    try:
        return run_recorded(run_dir, train, cfg)
    except RunInterrupted as interrupted:
        handler = before[interrupted.signum]
        if callable(handler) and handler not in (signal.default_int_handler, forward_to_jobs):
            signal.signal(interrupted.signum, handler)
            signal.raise_signal(interrupted.signum)
        if in_multirun():
            mark_stopped(Path(HydraConfig.get().sweep.dir), interrupted.signum)
            raise
        # The run is recorded and the process leaves: a second Ctrl-C that lands now must not turn the
        # exit into a KeyboardInterrupt (exit by SIGINT, not 130), so stop signals stay ignored.
        before = dict.fromkeys(before, signal.SIG_IGN)
        sys.exit(128 + interrupted.signum)
    finally:
        for signum, handler in before.items():
            if handler is not None:  # None: set outside Python, and not ours to put back
                signal.signal(signum, handler)


def _stop_now(signum: int, frame: object) -> None:
    # The same request often arrives twice (from a terminal or SLURM, and passed on by the sweep): a
    # second one must not cut short the recording of the first.
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    raise RunInterrupted(signum)


def _instantiate_trainer(
    trainer_cfg: DictConfig, callbacks: list[object], loggers: "list[Logger]"
) -> "pl.Trainer":
    """The Trainer, or ConfigError with the first line of the Trainer's own refusal."""
    import torch

    from seqexp.checkpoints import AtomicCheckpointIO
    from seqexp.precision import trainer_precision

    accelerator = trainer_cfg.get("accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} but this machine has no GPU that torch can use: "
            "use trainer=cpu (or trainer=auto, which takes a GPU where there is one)"
        )
    precision, precision_plugins = trainer_precision(trainer_cfg.get("precision"), accelerator)
    trainer = _instantiate(
        "trainer",
        trainer_cfg,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO(), *precision_plugins],
        precision=precision,
    )
    return cast("pl.Trainer", trainer)


def _instantiate(key: str, node: DictConfig, **kwargs: object) -> object:
    """``instantiate(node)``, or ConfigError with the first line of the constructor's own refusal (a
    Lightning class such as the Trainer or ModelCheckpoint validates its arguments itself)."""
    from hydra.utils import instantiate
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(node, **kwargs)
    except Exception as error:  # Hydra wraps the constructor's refusal; the cause is the message
        cause = error.__cause__ or error
        if isinstance(cause, ConfigError):
            raise cause from None  # already the one line for the user
        if not isinstance(cause, ValueError | TypeError | MisconfigurationException):
            raise
        raise ConfigError(f"{key} refused its arguments: {first_line(cause).split(': ', 1)[-1]}") from None


def train(cfg: DictConfig) -> float:
    """Fit the configured model and return its best validation loss (inf if the run diverged), per
    character for text, so that a search over tokenizers compares like with like (val/bpc x ln 2).

    Raises RunInterrupted when a signal stopped training (its checkpoints are written by then), and
    JobNotStarted when it stopped this job's sweep before the job began.
    """
    from seqexp.app.sweep_signals import this_sweep_stopped

    # Checked once the status says running: a sweep that stops from now on finds this job's pid there.
    if (signum := this_sweep_stopped()) is not None:
        raise JobNotStarted(signum)
    check_train_config(cfg)

    from seqexp.trackers.run_log import end_records

    if cfg.get("threads"):
        import torch

        torch.set_num_threads(cfg.threads)
    if cfg.get("reuse_freed_memory", True):  # runs saved before the key existed get the default
        reuse_freed_memory()
    datamodule, module, trainer = build(cfg)
    try:
        objective = _train_built(cfg, datamodule, module, trainer)
    except BaseException:
        end_records(trainer, succeeded=False)
        raise
    end_records(trainer, succeeded=True)
    return objective


def _train_built(
    cfg: DictConfig, datamodule: "StreamDataModule", module: "SequenceLightningModule", trainer: "pl.Trainer"
) -> float:
    from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

    from seqexp.app.hydra_ddp import (
        ddp_job_scope,
        lost_rank,
        start_ddp_ranks_from_the_job_config,
        stop_the_other_ranks,
    )
    from seqexp.callbacks.stop_on_signal import StopOnSignal
    from seqexp.trackers.run_log import continue_records, log_hyperparams

    if HydraConfig.initialized():
        start_ddp_ranks_from_the_job_config()
    parameters = module.parameter_count()
    rank_zero_info(size_advice(parameters, len(datamodule.splits["train"]), datamodule.item_name))
    if cfg.resume:
        rank_zero_info(f"resuming from {cfg.resume}")
        continue_records(trainer, _checkpoint_step(cfg.resume))
    elif continue_records(trainer, None):
        rank_zero_info("starting again: an earlier attempt stopped before its first checkpoint")
    if not cfg.resume:
        # Logged as a scalar so that reports compare model sizes without rebuilding the models.
        for logger in trainer.loggers:
            logger.log_metrics({"model/parameters": parameters}, step=0)

    try:
        with ddp_job_scope():
            metrics = _fit_and_test(cfg, trainer, module, datamodule)
    except Exception:
        if (lost := lost_rank(trainer)) is None:
            raise
        stop_the_other_ranks(trainer)
        raise RunFailed(
            f"{lost}, so the run stopped; its last checkpoint is intact: resume=<this run's folder> "
            "continues it"
        ) from None
    log_hyperparams(trainer, _flat_hparams(cfg), metrics)
    best, final = metrics["hp/best_val_loss"], metrics["hp/final_val_loss"]
    per_char = best * module.val_tokens_per_char
    in_chars = f" ({per_char:.6g} nats per character)" if module.val_tokens_per_char != 1.0 else ""
    rank_zero_info(f"best val/loss {best:.6g}{in_chars}, final val/loss {final:.6g}")
    # Lightning's CallbackConnector sets trainer.callbacks, which Trainer does not declare.
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    stop = next((c for c in callbacks if isinstance(c, StopOnSignal)), None)
    if stop is not None and stop.stopped:
        assert stop.received is not None, "a stop notes the signal it stopped for"
        rank_zero_info(f"interrupted by signal {stop.received}: resume=<this run's folder> continues it")
        raise RunInterrupted(stop.received)
    if module.divergence or not math.isfinite(final):
        rank_zero_warn(f"the run diverged ({module.divergence or f'val/loss {final}'}): its objective is inf")
        return math.inf
    return per_char


def _fit_and_test(
    cfg: DictConfig, trainer: "pl.Trainer", module: "SequenceLightningModule", datamodule: "StreamDataModule"
) -> dict[str, float]:
    """Fit, then test with the best checkpoint where the data has a test split; the final metrics."""
    from seqexp.checkpoints import NonFiniteWeights

    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.resume, weights_only=True)
    except NonFiniteWeights as error:  # a step that produced NaN weights from a finite loss
        module.divergence = str(error)
    if module.validated_at_step != trainer.global_step and not module.divergence:
        # Training ended where Lightning would not validate (check_val_every_n_epoch > 1 skips whole
        # epochs): score the final weights once more, so that the run's result is its last state.
        trainer.validate(module, datamodule=datamodule, verbose=False)
    if module.validated_at_step is None:
        raise RuntimeError(
            "the run ended without a validation that scored anything, so it has no result; see the log "
            "above for why training stopped"
        )
    # conf/callbacks' checkpoint, or the one Lightning adds without it: a ModelCheckpoint either way.
    checkpoint = cast("ModelCheckpoint | None", trainer.checkpoint_callback)
    final = _as_float(trainer.callback_metrics.get("val/loss"))
    best = _as_float(checkpoint.best_model_score) if checkpoint else math.nan
    metrics = {"hp/best_val_loss": final if math.isnan(best) else best, "hp/final_val_loss": final}
    if cfg.test_after_fit and datamodule.has_test and not module.divergence:
        ckpt_path = "best" if checkpoint and checkpoint.best_model_path else None
        results = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics["hp/test_loss"] = results[0]["test/loss"]
    return metrics


def _checkpoint_step(checkpoint: str) -> int:
    import torch

    # The step Lightning logs the next training step at. mmap: only the step is read, not the weights
    # (check_resume has read the file already).
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["global_step"])


def _as_float(value: "torch.Tensor | None") -> float:
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
