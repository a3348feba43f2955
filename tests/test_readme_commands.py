"""Every `python scripts/...` command in README.md, and in the header comments of conf/experiment/*.yaml
and conf/hparams_search/*.yaml, runs as written, with only budget overrides appended at the end.

Commands are found, not listed: a new README line is covered without touching this test. They run in
README order in one shared folder, as a user would run them one after the other, so a placeholder such
as ``outputs/runs/<date>/<time>_gru_shakespeare`` becomes the run an earlier line made (made here on
demand when a line is run alone), and ``my.txt`` / ``input.txt`` are written first. A line that needs
hardware this machine lacks (a GPU, a SLURM cluster) or the network is composed and built up to the
Trainer, and only its execution is skipped, with the reason.
"""

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests import warm_start
from tests.helpers import REPO, grammar_corpus, hydra_job_config, mlflow_server, script_env
from tests.launching import two_nodes

# Appended to each command of a script: a few steps, a few windows, short samples, few trials.
BUDGETS = {
    "train.py": [
        "trainer.max_steps=2",
        "trainer.limit_val_batches=2",
        "callbacks.text_sample.length=20",
    ],
    "sample.py": ["length=50"],
    "eval.py": [],
    "forecast.py": [],
    "report.py": [],
    "bench_sample.py": ["--length", "20", "--repeats", "1"],
    "bench_cells.py": ["--shape", "seed", "--repeats", "1", "--warmup", "0"],
    "bench_train.py": ["--preset", "sine", "--epochs", "1", "--repeats", "1"],
    "bench_data.py": ["--sizes-mb", "1", "--warm-runs", "1", "--tokenizers", "bpe"],
    "bench_diagnostics.py": ["--preset", "default", "-o", "trainer.max_epochs=1"],
    "bench_checkpoint.py": ["--steps", "4", "-o", "model.hidden_size=8"],
    "bench_dropout.py": ["--repeats", "1", "-o", "model.hidden_size=8", "data.batch_size=4", "seq_length=10"],
    "bench_host_memory.py": ["--chars", "20000", "--epochs", "1", "--repeats", "1", "-o", "seq_length=20"]
    + ["model.hidden_size=8", "data.batch_size=8"],
}
FAST_BASELINES = ("naive", "seasonal_naive", "seasonal_naive_drift", "ets")
# A resumed run goes two steps beyond the runs of the lines above (which train 2 steps).
RESUME_BUDGET = "trainer.max_steps=4"
COMMAND = re.compile(r"python scripts/\S+\.py\b.*")
# How a cluster starts a command on each of its machines: variables before it, torchrun, srun.
ON_NODES = re.compile(r"(?:(?:[A-Z_]+=\S+ )+python|torchrun|srun) .*?scripts/\S+\.py\b.*")


def _joined_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


def readme_commands() -> list[tuple[str, str]]:
    """``(where, command)`` for each `python scripts/...` command: in README code blocks, in inline code
    of its prose, and in the comments heading conf/experiment/ and conf/hparams_search/ presets."""
    found = []
    in_code = False
    for line in _joined_lines((REPO / "README.md").read_text()):
        if line.lstrip().startswith("```"):  # fences may be indented inside a list item
            in_code = not in_code
            continue
        if in_code:
            match = ON_NODES.match(line.strip()) or COMMAND.search(line)
            if match:  # a shell loop around a command runs whole
                found.append(
                    ("README.md", line.strip() if line.lstrip().startswith("for ") else match.group())
                )
        else:
            found += [("README.md", m) for m in re.findall(r"`(python scripts/[^`]+)`", line)]
    for folder in ("experiment", "hparams_search"):
        for preset in sorted((REPO / "conf" / folder).glob("*.yaml")):
            for line in preset.read_text().splitlines():
                if line.startswith("#") and (match := COMMAND.search(line)):
                    found.append((f"conf/{folder}/{preset.name}", match.group().split("`")[0]))
    # A command written in several places (a preset's header and the README) runs once: only its comment
    # can differ, and the comment is not part of it.
    seen: set[tuple[str, ...]] = set()
    unique = []
    for where, command in found:
        words = tuple(shlex.split(command, comments=True))
        if words not in seen:
            seen.add(words)
            unique.append((where, command))
    return unique


COMMANDS = readme_commands()


def arguments(command: str) -> tuple[str, list[str]]:
    """The script and its arguments, as a POSIX shell would split them (comments dropped); for a command
    started on a cluster's nodes, those after its launcher."""
    words = shlex.split(command, comments=True)
    start = next(i for i, word in enumerate(words) if word.startswith("scripts/"))
    assert start == 1 and words[0] == "python" or ON_NODES.match(command), command
    return words[start].removeprefix("scripts/"), words[start + 1 :]


def run_on_two_nodes(folder: Path, command: str) -> None:
    """A command the README starts on each of two machines, started twice here as two nodes on this one:
    the first machine's address is 127.0.0.1, its ports free ones, NODE_RANK 0 and 1."""
    words = shlex.split(command, comments=True)
    script, args = arguments(command)
    for resumed in [a.split("=", 1)[1] for a in args if a.startswith("resume=")]:
        if not (folder / resumed).exists():  # the line that makes it ran on another worker, or not yet
            (making,) = [c for _, c in COMMANDS if ON_NODES.match(c) and f"hydra.run.dir={resumed}" in c]
            run_on_two_nodes(folder, making)
    args = [*args, *budget(script, args)]
    if words[0] == "torchrun":
        launcher = words[1 : words.index(f"scripts/{script}")]
        launches = two_nodes([REPO / "scripts" / script, *args], torchrun=launcher)
    else:
        variables = dict(word.split("=", 1) for word in words[: words.index("python")])
        assert {"MASTER_ADDR", "MASTER_PORT", "NODE_RANK"} <= variables.keys(), command
        others = {k: v for k, v in variables.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK")}
        launches = [(argv, {**others, **env}) for argv, env in two_nodes([REPO / "scripts" / script, *args])]
    logs = [folder / f"node{node}.log" for node in (0, 1)]
    nodes = []
    for (argv, environment), log in zip(launches, logs, strict=True):
        with log.open("w") as out:
            nodes.append(
                subprocess.Popen(
                    [sys.executable, *argv],
                    cwd=folder,
                    env=environment,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )
    try:
        for node in nodes:
            node.wait(timeout=600)
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
    for node, log in zip(nodes, logs, strict=True):
        output = log.read_text(errors="replace")
        assert node.returncode == 0, f"{command}\n{output[-3000:]}"
        assert "Traceback" not in output, output[-3000:]


def missing_hardware(script: str, args: list[str]) -> str | None:
    """Why this machine cannot execute the command, or None."""
    text = " ".join(args)
    if "hydra/launcher=slurm" in text:
        return "needs a SLURM cluster"
    gpu = re.search(r"(trainer=(gpu|ddp)\b|trainer\.accelerator=gpu|device=cuda|experiment=\w+_gpu\b)", text)
    if gpu and not torch.cuda.is_available():
        return f"needs a GPU ({gpu.group()})"
    if "tinyshakespeare" in text and TINYSHAKESPEARE is None:
        # The file is sha256-checked, so neither a local server nor data.path can stand in for it offline.
        return f"needs tinyshakespeare (sha256-checked) in one of {TINYSHAKESPEARE_PLACES}"
    return None


# Where a copy of tinyshakespeare may already be on the machine: the project's download cache, the
# shared data folder beside the repository, or a path in $SEQEXP_TINYSHAKESPEARE.
TINYSHAKESPEARE_PLACES = [
    *([Path(os.environ["SEQEXP_TINYSHAKESPEARE"])] if os.environ.get("SEQEXP_TINYSHAKESPEARE") else []),
    REPO / "data" / "tinyshakespeare" / "input.txt",
    REPO.parent / "shared" / "data" / "tinyshakespeare.txt",
]
TINYSHAKESPEARE = next((path for path in TINYSHAKESPEARE_PLACES if path.is_file()), None)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The folder the commands run in, with the files the README tells the user to bring (a text,
    tinyshakespeare where the machine has it, a CSV of sales)."""
    folder = tmp_path_factory.mktemp("readme")
    text = (grammar_corpus(4000) + "Once upon a time the cat sees the dog.\n") * 4
    (folder / "my.txt").write_text(text, encoding="utf-8")
    days = 1000  # three years of daily sales, the units following the price and the day of the week
    rng = np.random.default_rng(0)
    price = 10 + np.cumsum(rng.normal(0, 0.05, days))
    units = 100 - 3 * price + 10 * np.sin(2 * np.pi * np.arange(days) / 7) + rng.normal(0, 2, days)
    dates = np.datetime64("2025-01-01") + np.arange(days)
    sales = "date,units,price\n" + "".join(
        f"{d},{u:.1f},{p:.2f}\n" for d, u, p in zip(dates, units, price, strict=True)
    )
    (folder / "sales.csv").write_text(sales)
    if TINYSHAKESPEARE is not None:  # as if downloaded once (data=tinyshakespeare), and as a local copy
        (folder / "data" / "tinyshakespeare").mkdir(parents=True)
        shutil.copy(TINYSHAKESPEARE, folder / "data" / "tinyshakespeare" / "input.txt")
        shutil.copy(TINYSHAKESPEARE, folder / "input.txt")
    return folder


def run(folder: Path, script: str, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return warm_start.run([REPO / "scripts" / script, *args], cwd=folder, timeout=timeout)


def budget(script: str, args: list[str]) -> list[str]:
    if script == "train.py" and any(a.startswith("resume=outputs/multiruns/") for a in args):
        return []  # a resumed sweep is launched again exactly as it was started
    if script == "train.py" and any(a.startswith("resume=") for a in args):
        return [RESUME_BUDGET]  # a resumed run keeps its config: only its limits may be given
    searches = script == "train.py" and any(a.startswith("hparams_search=") for a in args)
    # SARIMA's fit takes most of a minute on co2 (tests/test_forecast_baselines.py checks it): the other
    # baselines stand in for it here.
    series = script == "train.py" and any(
        re.match(r"(data|hparams_search|experiment)=(series|co2)", a) for a in args
    )
    return [
        *BUDGETS[script],
        *(["hydra.sweeper.n_trials=2"] if searches else []),
        *([f"data.baselines=[{','.join(FAST_BASELINES)}]"] if series else []),
    ]


def latest(folder: Path, pattern: str, holding: str | None = None) -> Path | None:
    """The newest folder matching ``pattern`` (a day's folder of sweeps also holds the report's files),
    among those holding the file ``holding`` if given."""
    matches = [
        path
        for path in folder.glob(pattern)
        if path.is_dir() and (holding is None or (path / holding).is_file())
    ]
    return max(matches, default=None)


def substitute(folder: Path, command: str) -> str:
    """Placeholders replaced by what an earlier command made (made now if it has not run yet)."""
    single_run = re.search(r"outputs/runs/<date>/<time>_([a-z-]+)_(\w+)", command)
    sweep = r"(outputs/multiruns/<date>/<time>|<sweep dir>)"
    if single_run:
        pattern = f"outputs/runs/*/*_{single_run.group(1)}_{single_run.group(2)}"
        found = latest(folder, pattern)
        if found is None:
            choices = [f"model={single_run.group(1)}", f"data={single_run.group(2)}"]
            made = run(folder, "train.py", [*choices, *budget("train.py", choices)])
            assert made.returncode == 0, made.stderr[-3000:]
            found = latest(folder, pattern)
        command = command.replace(single_run.group(), str(found.relative_to(folder)))
    for runs in ("runs", "multiruns"):  # the day's folder of runs, or of sweeps
        if re.search(rf"outputs/{runs}/<date>(\s|$)", command):
            found = latest(folder, f"outputs/{runs}/*")
            assert found is not None, f"{command}: no {runs} have been made yet"
            command = re.sub(rf"outputs/{runs}/<date>(?=\s|$)", str(found.relative_to(folder)), command)
    if re.search(sweep, command):
        # A sweep that resume= continues is a grid (it has multirun.yaml); a search is refused by design.
        holding = "multirun.yaml" if "resume=" in command else None
        found = latest(folder, "outputs/multiruns/*/*", holding)
        if found is None:
            made = run(folder, "train.py", ["-m", "model=rnn,gru", *BUDGETS["train.py"]])
            assert made.returncode == 0, made.stderr[-3000:]
            found = latest(folder, "outputs/multiruns/*/*", holding)
        command = re.sub(sweep, str(found.relative_to(folder)), command)
    return command


def compose_up_to_the_trainer(folder: Path, args: list[str]) -> None:
    """What can be checked without the hardware: the config composes and passes the checks, and the
    data and the model are built."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from seqexp.app.config_checks import check_train_config
    from seqexp.module import SequenceLightningModule

    overrides = [a for a in args if a != "-m" and not a.startswith(("hydra/launcher", "hydra.launcher"))]
    if "-m" in args:  # a sweep's first job stands for all of them
        overrides = [re.sub(r"=([^,\[\]'\"(]+),.*", r"=\1", a) for a in overrides]
    with hydra_job_config("train", overrides, folder / "composed") as cfg:
        check_train_config(cfg)
        if "tinyshakespeare" in cfg.data._target_:
            return  # building its datamodule would download
        datamodule = instantiate(cfg.data)
        spec = datamodule.spec
        model = OmegaConf.to_container(cfg.model, resolve=True)
        SequenceLightningModule(model=model, data=spec.as_dict(), optim=dict(cfg.optim))


@pytest.mark.slow  # every README command for real: a few minutes on 2 shared cores
# One worker runs them all, in README order: a command then finds the run an earlier one made, instead of
# each worker training its own copy on demand.
@pytest.mark.xdist_group("readme")
@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w}:{c[15:60]}" for w, c in COMMANDS])
def test_the_command_runs_as_written(workspace, where, command):
    if command.startswith("for "):  # e.g. resuming every job of a sweep: the loop runs in bash as written
        loop = substitute(workspace, command).replace("scripts/", f"{REPO}/scripts/")
        loop = re.sub(r"(resume=\S+?)(;)", rf"\1 {RESUME_BUDGET}\2", loop)
        result = subprocess.run(
            ["bash", "-c", loop.replace("python ", f"{sys.executable} ")],
            cwd=workspace, env=script_env(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, f"{where}: {command}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr
        return
    if command.startswith("srun "):
        compose_up_to_the_trainer(workspace, arguments(command)[1])
        pytest.skip("needs a SLURM cluster: composed and built up to the Trainer, not executed")
    if ON_NODES.match(command):
        run_on_two_nodes(workspace, substitute(workspace, command))
        return
    script, args = arguments(substitute(workspace, command))
    unknown = [arg for arg in args if re.search(r"<[^>]+>", arg)]
    assert not unknown, f"{where}: a placeholder this test does not know: {unknown}"
    reason = missing_hardware(script, args)
    if reason:
        if script == "train.py":
            compose_up_to_the_trainer(workspace, args)
        pytest.skip(f"{reason}: composed and built up to the Trainer, not executed")
    server = re.search(r"tracking_uri=http://127\.0\.0\.1:(\d+)", " ".join(args))
    # The README starts an MLflow server on that port the line before: so does the test.
    with mlflow_server(workspace, int(server.group(1))) if server else contextlib.nullcontext():
        result = run(workspace, script, [*args, *budget(script, args)])
    assert result.returncode == 0, f"{where}: {command}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr


def test_the_readme_commands_are_found():
    scripts = {arguments(command)[0] for _, command in COMMANDS if not command.startswith("for ")}
    assert {"train.py", "sample.py", "eval.py", "report.py"} <= scripts
    assert any(c.endswith("length=2000 top_k=5 temperature=1.0 seed=0") for _, c in COMMANDS), "continuations"
    assert any(where.startswith("conf/hparams_search") for where, _ in COMMANDS)
    assert set(scripts) <= set(BUDGETS), "a new script needs its budget overrides here"


def presets_no_command_runs() -> list[tuple[str, str]]:
    """The presets of conf/experiment and conf/hparams_search that no command above already runs."""
    ran = " ".join(command for _, command in COMMANDS)
    return [
        (group, preset.stem)
        for group in ("experiment", "hparams_search")
        for preset in sorted((REPO / "conf" / group).glob("*.yaml"))
        if not re.search(rf"{group}={preset.stem}(\s|$)", ran)
    ]


@pytest.mark.slow
@pytest.mark.xdist_group("readme")
def test_every_preset_runs_a_few_steps(workspace):
    """Presets that no command names (today: none) still run, so a new preset is never untried."""
    for group, preset in presets_no_command_runs():
        multirun = ["-m", "hydra.sweeper.n_trials=1"] if group == "hparams_search" else []
        result = run(workspace, "train.py", [*multirun, f"{group}={preset}", *BUDGETS["train.py"]])
        assert result.returncode == 0, f"{group}={preset}\n{result.stderr[-3000:]}"
