"""``resume=<run folder | checkpoint file>``: continue a run in its own folder, from its saved config.

``scripts/train.py`` rewrites the command line before Hydra sees it (:func:`resume_arguments`): the run's
``.hydra/config.yaml`` becomes the config, the run's folder the output folder, and Hydra writes nothing
of its own there (``hydra.output_subdir=null``), so the record of how the run was started stays as it
was. Only the limits may change (:data:`EXTENDABLE`). The train task then checks that the checkpoint
belongs to that config (:func:`check_resume`) before it touches the folder, and saves the extended
limits into the run's config so that its DDP ranks and a later resume see them.
"""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from seqexp.app.run_status import read_status
from seqexp.data.files import write_atomically
from seqexp.errors import ConfigError, first_line
from seqexp.run_layout import CHECKPOINT_DIR, LAST, SAVED_CONFIG, STATUS_FILE, checkpoint_file

# What a resumed run may change: how long it goes on, how often it saves, how it shows progress.
EXTENDABLE = (
    "trainer.max_steps",
    "trainer.max_epochs",
    "trainer.max_time",
    "save_every_steps",
    "save_every_minutes",
    "trainer.enable_progress_bar",
)


class NothingToResume(Exception):
    """The run finished and no limit was extended: there is nothing to continue (not an error)."""


def resume_arguments(argv: list[str]) -> list[str]:
    """``argv`` with ``resume=PATH`` turned into the run's saved config and folder; ``argv`` itself when
    it does not resume. Raises ConfigError for a path that is not a resumable run."""
    from seqexp.app.run_status import launched_process

    if not launched_process():  # a DDP rank: its parent already turned resume= into the run's config
        return argv
    resume = [arg for arg in argv[1:] if arg.split("=", 1)[0].lstrip("+") == "resume"]
    if not resume:
        return argv
    others = [arg for arg in argv[1:] if arg not in resume]
    value = resume[-1].split("=", 1)[1]
    if not value or value == "null":
        return [argv[0], *others]
    if any(arg in ("-m", "--multirun") for arg in others):
        raise ConfigError(
            "resume= continues one run: resume the jobs of a sweep one by one (README: Long runs)"
        )
    for arg in others:
        key = arg.split("=", 1)[0].lstrip("+~")
        if arg.startswith("-") or key not in EXTENDABLE:
            raise ConfigError(
                f"{arg!r} cannot change a resumed run, which keeps its saved config; with resume= only "
                f"{', '.join(EXTENDABLE)} may be given"
            )
    run_dir, checkpoint = locate_run(value)
    status = read_status(run_dir)
    if status is not None and status.status == "running" and not status.process_gone():
        raise ConfigError(f"resume={value!r}: that run is still going (process {status.pid}, {status.host})")
    if status is not None and status.status == "ok" and not others:
        raise NothingToResume(
            f"{run_dir} finished (status ok): nothing to resume; extend it with trainer.max_steps=... or "
            "trainer.max_epochs=..."
        )
    return [
        argv[0],
        f"--config-path={(run_dir / SAVED_CONFIG.parent).resolve()}",
        f"--config-name={SAVED_CONFIG.stem}",
        f"hydra.run.dir='{run_dir.resolve()}'",
        "hydra.output_subdir=null",
        f"++resume='{checkpoint.resolve()}'",
        *others,
    ]


def locate_run(path: str) -> tuple[Path, Path]:
    """``(run folder, checkpoint)`` for a run folder (its last.ckpt) or a checkpoint file inside one."""
    checkpoint = checkpoint_file(path, "resume")
    run_dir = checkpoint.parent.parent
    if checkpoint.parent.name != CHECKPOINT_DIR or not (run_dir / SAVED_CONFIG).is_file():
        raise ConfigError(
            f"resume={path!r} is not inside a run folder (<run>/{CHECKPOINT_DIR}/*.ckpt beside "
            f"<run>/{SAVED_CONFIG}): give a run folder or its {CHECKPOINT_DIR}/{LAST}"
        )
    return run_dir, checkpoint


def check_resume(cfg: DictConfig) -> None:
    """Raise ConfigError when ``cfg.resume`` is not a checkpoint of the run ``cfg`` configures: another
    model, other data, or another number of processes (each holds its own rows and hidden state)."""
    from hydra.utils import instantiate

    from seqexp.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(cfg.resume, "resume")
    saved = checkpoint["hyper_parameters"]
    mismatch = (
        "holds a {what} that differs from this run's: give a checkpoint of this run ({saved} != {ours})"
    )
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if saved["model"] != model:
        raise ConfigError(
            f"resume={cfg.resume!r} " + mismatch.format(what="model", saved=saved["model"], ours=model)
        )
    data = instantiate(cfg.data).spec.as_dict()
    saved_data = dict(saved["data"])
    if cfg.data.get("eval_burn_in") is None:
        # Left to adapt, the burn-in was fitted to the splits and the Trainer when the run was built, and
        # is fitted again, to the same value, when the resumed run is; the fresh datamodule has not been.
        data.pop("eval_burn_in", None)
        saved_data.pop("eval_burn_in", None)
    if "source_sha256" not in saved_data:  # written before checkpoints recorded it
        data.pop("source_sha256", None)
    elif saved_data["source_sha256"] != data.get("source_sha256"):
        raise ConfigError(
            f"resume={cfg.resume!r} was trained on a corpus with sha256 {saved_data['source_sha256'][:12]}…, "
            f"but the run's data is now {str(data.get('source_sha256'))[:12]}…: the text changed; put the "
            "original back, or start a new run"
        )
    if saved_data != data:
        brief = {key: saved_data.get(key) for key in data if saved_data.get(key) != data[key]}
        ours = {key: data[key] for key in brief}
        raise ConfigError(f"resume={cfg.resume!r} " + mismatch.format(what="data", saved=brief, ours=ours))
    step = checkpoint["global_step"]
    # Lightning counts an epoch as done only once the next one starts: a checkpoint written after the
    # last window of epoch e says epoch e and "last batch".
    last_batch = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["is_last_batch"]
    epochs = checkpoint["epoch"] + int(last_batch)
    max_steps, max_epochs = cfg.trainer.max_steps, cfg.trainer.max_epochs
    steps_done = max_steps is not None and 0 <= max_steps <= step
    if steps_done or (max_epochs is not None and 0 <= max_epochs <= epochs):
        raise NothingToResume(
            f"nothing to resume: {cfg.resume} is at step {step} after {epochs} epoch(s), which "
            f"trainer.max_steps={max_steps} and trainer.max_epochs={max_epochs} do not go beyond; give a "
            "larger limit"
        )
    devices, nodes = cfg.trainer.get("devices"), cfg.trainer.get("num_nodes", 1)
    ranks = checkpoint.get("seqexp", {}).get("world_size")
    if isinstance(devices, int) and ranks is not None and ranks != devices * nodes:
        raise ConfigError(
            f"resume={cfg.resume!r} was written by {ranks} process(es), but the run's config starts "
            f"{devices * nodes}: each process carries its own rows and hidden state"
        )


def save_resumed_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write the run's config with the limits the resume extended (atomically), ``resume`` left out."""
    config = cfg.copy()
    with open_dict(config):
        config.resume = None
    text = OmegaConf.to_yaml(config, resolve=False)
    try:
        write_atomically(run_dir / SAVED_CONFIG, lambda file: file.write(text.encode()))
    except OSError as error:
        raise ConfigError(f"cannot update {run_dir / SAVED_CONFIG}: {first_line(error)}") from None


def requeued_checkpoint(run_dir: Path) -> Path | None:
    """The last checkpoint of this very job when SLURM requeued it (after a timeout or a preemption, the
    job starts again with the same id and in the same folder), else None."""
    from seqexp.app.run_status import slurm_job_id

    status = read_status(run_dir) if (run_dir / STATUS_FILE).is_file() else None
    last = run_dir / CHECKPOINT_DIR / LAST
    requeued = (
        status is not None
        and status.slurm_job is not None
        and status.slurm_job == slurm_job_id()
        and status.status != "ok"
    )
    return last if requeued and last.is_file() else None
