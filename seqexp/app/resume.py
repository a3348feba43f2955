"""``resume=<run folder | checkpoint file>``: continue a run in its own folder, from its saved config.

``scripts/train.py`` rewrites the command line before Hydra sees it (:func:`resume_arguments`): the run's
``.hydra/config.yaml`` becomes the config, the run's folder the output folder, and Hydra writes nothing
of its own there (``hydra.output_subdir=null``), so the record of how the run was started stays as it
was. Only the limits may change (:data:`EXTENDABLE`). The train task then checks that the checkpoint
belongs to that config (:func:`check_resume`) before it touches the folder, and saves the extended
limits into the run's config so that its DDP ranks and a later resume see them.
"""

import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from seqexp.app.run_status import RunStatus, read_status
from seqexp.data.files import write_atomically
from seqexp.errors import ConfigError, first_line
from seqexp.run_layout import (
    CHECKPOINT_DIR,
    HYDRA_DIR,
    LAST,
    MULTIRUN_CONFIG,
    SAVED_CONFIG,
    TENSORBOARD_DIR,
    checkpoint_file,
)

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"  # Hydra's grid sweeper

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
    from seqexp.app.cluster import launched_process, process_name_suffix, started_by_lightning

    if started_by_lightning():  # its parent already turned resume= into the run's config
        return argv
    resume = [arg for arg in argv[1:] if arg.split("=", 1)[0].lstrip("+") == "resume"]
    if not resume:
        return argv
    others = [arg for arg in argv[1:] if arg not in resume]
    value = resume[-1].split("=", 1)[1]
    if not value or value == "null":
        return [argv[0], *others]
    if (sweep := sweep_config(Path(value).expanduser())) is not None:
        return sweep_arguments(argv[0], value, sweep, others)
    if any(arg in ("-m", "--multirun") for arg in others):
        raise ConfigError(
            "resume= continues one run, or a whole sweep given its folder (resume=<sweep dir>), without -m"
        )
    for arg in others:
        key = arg.split("=", 1)[0].lstrip("+~")
        if arg.startswith("-") or key not in EXTENDABLE:
            raise ConfigError(
                f"{arg!r} cannot change a resumed run, which keeps its saved config; with resume= only "
                f"{', '.join(EXTENDABLE)} may be given"
            )
    run_dir, checkpoint = locate_run(value)
    check_writable(run_dir, value)
    # Another node's process (a cluster started it with this same command): the first process checks the
    # run's status, which it is about to set to running itself.
    status = read_status(run_dir) if launched_process() else None
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
        *([f"hydra.job.name={Path(argv[0]).stem}{suffix}"] if (suffix := process_name_suffix()) else []),
        *([] if checkpoint is None else [f"++resume='{checkpoint.resolve()}'"]),
        *others,
    ]


def sweep_arguments(script: str, value: str, sweep: Path, others: list[str]) -> list[str]:
    """The command line that launches the sweep in folder ``value`` again (``sweep``: its config), as it
    was started, into that folder: its finished jobs return what they recorded, the others continue or start
    (seqexp/tasks/train.py); see seqexp/app/sweep_signals.py."""
    from seqexp.app.run_folder import RESUMED_SWEEP

    if others:
        raise ConfigError(
            f"{others[0]!r}: resume=<sweep dir> launches the sweep again exactly as it was started, so "
            "nothing may be added; extend its jobs one by one with resume=<job dir> trainer.max_steps=..."
        )
    folder = Path(value).expanduser().resolve()
    try:
        config = OmegaConf.load(sweep)
        sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_"))
        task, hydra = list(config.hydra.overrides.task), list(config.hydra.overrides.hydra)
    except Exception as error:  # not a file Hydra wrote: YAML or key errors, many kinds
        raise ConfigError(f"resume={value!r}: {sweep} is unreadable: {first_line(error)}") from None
    if sweeper != BASIC_SWEEPER:
        raise ConfigError(
            f"resume={value!r} is a search ({sweeper.rsplit('.', 1)[-1]}), whose trials are drawn one at a "
            f"time: continue its unfinished trials one by one, for job in {value}/*/; do python "
            "scripts/train.py resume=$job; done"
        )
    os.environ[RESUMED_SWEEP] = str(folder)
    hydra = [override for override in hydra if override.split("=", 1)[0] != "hydra.sweep.dir"]
    return [script, "-m", *task, *hydra, f"hydra.sweep.dir='{folder}'"]


def sweep_config(folder: Path) -> Path | None:
    """The file that holds the Hydra config of the sweep in ``folder`` (None: not a sweep's folder).

    Hydra's grid sweeper writes ``multirun.yaml`` there; the Optuna sweeper does not, and its jobs'
    ``.hydra/hydra.yaml`` name it."""
    if (folder / MULTIRUN_CONFIG).is_file():
        return folder / MULTIRUN_CONFIG
    if (folder / SAVED_CONFIG).is_file():  # a run's folder
        return None
    return next(iter(sorted(folder.glob(f"*/{HYDRA_DIR}/hydra.yaml"))), None)


def check_writable(run_dir: Path, value: str) -> None:
    """Raise ConfigError when the run's folders cannot be written (a read-only mount or permissions):
    a resumed run goes on in them, and would otherwise fail in Hydra's logging set-up with a traceback."""
    for folder in (run_dir, run_dir / CHECKPOINT_DIR, run_dir / TENSORBOARD_DIR):
        if not folder.is_dir():
            continue
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise ConfigError(
                f"resume={value!r}: cannot write in {folder} ({error.strerror}); a resumed run continues in "
                "its own folder: make it writable, or copy the run somewhere writable and resume the copy"
            ) from None


def locate_run(path: str) -> tuple[Path, Path | None]:
    """``(run folder, checkpoint)`` for a run folder (its last.ckpt) or a checkpoint file inside one; the
    checkpoint is None for a run that stopped before it saved one (a sweep's job that did not start),
    which starts again in its folder."""
    folder = Path(path).expanduser()
    if (folder / SAVED_CONFIG).is_file() and not any((folder / CHECKPOINT_DIR).glob("*.ckpt")):
        try:
            status = read_status(folder)
        except ValueError:
            status = None
        if status is not None and status.status in ("not started", "interrupted", "failed", "running"):
            return folder, None
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
    if saved_data.get("tokenizer") != data.get("tokenizer"):
        from seqexp.data.spec import DataSpec
        from seqexp.data.tokenizer import described

        now, then = described(DataSpec.from_dict(data)), described(DataSpec.from_dict(saved_data))
        raise ConfigError(
            f"resume={cfg.resume!r} reads {then}, but the run's data now gives "
            f"{now if now != then else 'one learnt from other text'}: a tokenizer cannot change "
            "in a run; start a new run for it"
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


def earlier_attempt(run_dir: Path) -> RunStatus | None:
    """The status that an earlier attempt at this very job left in its folder, or None for a new run.

    A new run never finds one: it claimed a folder of its own (seqexp/app/run_folder.py). A status means
    the same job started again: SLURM requeued it (after a time limit or a preemption it starts again with
    the same id, in the same folder), or ``resume=<sweep dir>`` launched its sweep again. A status file
    that cannot be read counts as an attempt that did not finish.
    """
    try:
        return read_status(run_dir)
    except ValueError:
        return RunStatus("failed", started=0.0, host="", pid=0)
