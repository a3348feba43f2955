"""Helpers the tests share that are not fixtures."""

import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]


def script_env() -> dict[str, str]:
    """The environment the tests run scripts in, as a user would run them from this checkout.

    The checkout goes on PYTHONPATH (CI installs the package instead, where this is harmless). Models
    this small gain nothing from several threads, and on shared cores their spinning threads make a
    run many times slower, so each run gets one unless the caller chose otherwise.
    """
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONPATH": pythonpath}
    env.pop("HYDRA_FULL_ERROR", None)  # a user's shell may set it; the tests check the plain output
    return env


def read_events(run_dir: Path) -> EventAccumulator:
    """A run's TensorBoard events, read with TensorBoard's own reader (nothing sampled away)."""
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def assert_user_error(result, *fragments: str) -> None:
    """Exit status 2, exactly one `error: ...` line on stderr naming the fragments, no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


DETERMINERS = ("the", "a", "every")
NOUNS = ("cat", "dog", "bird", "horse", "fish")
VERBS = ("sees", "likes", "chases", "hears")
ADJECTIVES = ("big", "small", "red", "quiet")
WORDS = {*DETERMINERS, *NOUNS, *VERBS, *ADJECTIVES}


def grammar_corpus(sentences: int, seed: int = 0) -> str:
    """Sentences of a tiny grammar: words are random, spelling and word order are not, so a model that
    learns them predicts far better than the characters' unigram frequencies."""
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        words = [rng.choice(DETERMINERS), rng.choice(NOUNS), rng.choice(VERBS), rng.choice(DETERMINERS)]
        words += [rng.choice(ADJECTIVES), rng.choice(NOUNS)]
        lines.append(" ".join(words) + ".")
    return "\n".join(lines) + "\n"


def unigram_entropy_nats(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log(n / len(text)) for n in counts.values())


def sine_shape() -> dict[str, float]:
    """conf/data/sine.yaml's curve (step, amplitude, frequency, phase, noise_std), for tests that build the
    sine without composing a config: SineDataModule and sine_series have no defaults of their own."""
    from omegaconf import OmegaConf

    data = OmegaConf.load(REPO / "conf" / "data" / "sine.yaml")
    return {key: data[key] for key in ("step", "amplitude", "frequency", "phase", "noise_std")}


def model_options(cell: str, hidden_size: int, num_layers: int = 1, **changes: object) -> dict[str, object]:
    """A model's options for tests that build one without composing a config: conf/_model.yaml's shared
    keys (SequenceModel has no defaults of its own), the size, and ``changes`` over them."""
    from omegaconf import OmegaConf

    shared = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "_model.yaml"))
    assert isinstance(shared, dict)
    return {**shared, "cell": cell, "hidden_size": hidden_size, "num_layers": num_layers, **changes}


def compose_train(overrides: list[str], output_dir: Path, return_hydra_config: bool = False):
    """conf/train.yaml composed with ``overrides`` as scripts/train.py would, writing to ``output_dir``."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        paths = [f"paths.output_dir={output_dir}", f"paths.root_dir={REPO}"]
        return compose("train", overrides=[*overrides, *paths], return_hydra_config=return_hydra_config)


@contextmanager
def hydra_job_config(config_name: str, overrides: list[str], output_dir: Path) -> Iterator[DictConfig]:
    """The configuration a ``@hydra.main`` task would get for ``overrides``, in-process: composed from
    conf/, with Hydra's runtime set so that ``${hydra:runtime.output_dir}`` resolves to ``output_dir``.
    In-process runs are for tests that need many configurations; the scripts are run for real elsewhere."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    try:
        yield cfg
    finally:
        HydraConfig.instance().cfg = None


def assert_one_line(error: BaseException, *fragments: str) -> None:
    """A user mistake as the entry points print it: a ConfigError of one line naming the fragments."""
    from seqexp.errors import ConfigError

    assert isinstance(error, ConfigError), repr(error)
    assert len(str(error).splitlines()) == 1, str(error)
    for fragment in fragments:
        assert fragment in str(error), (fragment, str(error))


def job_folder(sweep: Path, number: int | str) -> Path:
    """Job ``number``'s folder of a multirun: ``<number>_<its overrides>`` (conf/hydra/default.yaml)."""
    (folder,) = [p for p in sweep.iterdir() if p.is_dir() and p.name.split("_", 1)[0] == str(number)]
    return folder


# Overrides for a run of a second or two: 2 epochs of 11 windows of 10 points, hidden 8, every step logged.
TINY_LOGGED = [
    "data.n_points=600",
    "seq_length=10",
    "model.hidden_size=8",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "test_after_fit=false",
]


# A character corpus trains a 1 x 512 model on 64 rows of 150 characters for 10 minutes by default
# (conf/_text_training.yaml), which the few-KB corpora of the tests are too short for. These are the
# small defaults the tests' text runs were written against; a test's own overrides come after and win.
SMALL_CORPUS_TRAINING = [
    "data.batch_size=32",
    "seq_length=50",
    "model.hidden_size=64",
    "model.encoder=onehot",
    "model.dropout=0.0",
    "optim.lr=0.01",
    "clip=5.0",
    "scheduler=none",
    "trainer.max_time=null",
    "trainer.max_epochs=30",
    "trainer.val_check_interval=1.0",
    "trainer.check_val_every_n_epoch=1",
]


def report(directory: Path, capsys) -> tuple[int, str, list[str]]:
    """Run scripts/report.py in-process: (exit status, stdout, stderr lines)."""
    from scripts.report import main

    try:
        main([str(directory)])
        code = 0
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


@contextmanager
def mlflow_server(folder: Path, port: int) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1:``port`` with a SQLite backend in ``folder``; its URL, until the
    block ends."""
    server = subprocess.Popen(
        [Path(sys.executable).parent / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--default-artifact-root", str(folder / "mlflow-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "mlflow server did not answer in 90 s"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def postgres_binaries() -> Path | None:
    """The folder of PostgreSQL's server programs: Debian's package keeps them off PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return None if found is None else Path(found).parent


@contextmanager
def postgres_server(port: int) -> Iterator[str]:
    """A PostgreSQL server (Debian's ``postgresql`` package, which .ci/run installs) on 127.0.0.1:``port``
    with its data in a temporary folder; its SQLAlchemy URL, until the block ends. PostgreSQL refuses to
    run as root, so as root (CI) it runs as the package's ``postgres`` user."""
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's server is not installed: apt-get install postgresql (.ci/run does)")
    folder = Path(tempfile.mkdtemp(prefix="seqexp-postgres-"))  # not under tmp_path: root's, mode 0700
    as_server = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_server = ["runuser", "-u", "postgres", "--"]
    data, ctl = folder / "data", binaries / "pg_ctl"
    try:
        subprocess.run(
            [*as_server, binaries / "initdb", "-D", data, "-U", "seqexp", "--auth=trust"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [*as_server, ctl, "-D", data, "-l", folder / "server.log", "-w", "start",
             "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield f"postgresql+psycopg2://seqexp@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_server, ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
