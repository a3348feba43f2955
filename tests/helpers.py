"""Helpers the tests share that are not fixtures."""

import math
import os
import random
from collections import Counter
from pathlib import Path

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


def compose_train(overrides: list[str], output_dir: Path, return_hydra_config: bool = False):
    """conf/train.yaml composed with ``overrides`` as scripts/train.py would, writing to ``output_dir``."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        paths = [f"paths.output_dir={output_dir}", f"paths.root_dir={REPO}"]
        return compose("train", overrides=[*overrides, *paths], return_hydra_config=return_hydra_config)
