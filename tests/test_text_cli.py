"""The text workflow through the real scripts: train a char model, sample from its checkpoint, and every
bad input ending as one `error: ...` line, exit status 2 and no traceback.

Each group of processes is started at once and awaited together.
"""

import functools
import hashlib
import http.server
import math
import random
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests import warm_start
from tests.helpers import (
    REPO,
    SMALL_CORPUS_TRAINING,
    WORDS,
    assert_user_error,
    grammar_corpus,
    unigram_entropy_nats,
)

TIMEOUT_S = 240


def run_together(commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Run ``{name: [script, *overrides]}`` concurrently from the repository root."""
    results = warm_start.run_together(list(commands.values()), cwd=REPO, timeout=TIMEOUT_S)
    return dict(zip(commands, results, strict=True))


# -- train, then sample from the checkpoint -------------------------------------------------------------


@dataclass
class TrainedRun:
    corpus: str
    run_dir: Path
    checkpoint: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """A small LSTM trained for 300 steps (3 epochs x 100 windows) on the grammar corpus; its token file
    is deleted afterwards, so sampling works from the checkpoint alone."""
    root = tmp_path_factory.mktemp("charmodel")
    corpus = grammar_corpus(sentences=2050)  # 16 rows x 100 windows x 32 characters of training text
    (root / "corpus.txt").write_text(corpus, encoding="utf-8")
    run_dir = root / "run"
    overrides = [
        "data=text",
        f"data.path={root / 'corpus.txt'}",
        *SMALL_CORPUS_TRAINING,
        "data.val_fraction=0.1",
        "data.test_fraction=0.05",
        "data.batch_size=16",
        "seq_length=32",
        "model=lstm",
        "model.hidden_size=64",
        "model.num_layers=1",
        "optim.lr=0.01",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
        "callbacks.text_sample.prime=the",
        "callbacks.text_sample.length=60",
        f"hydra.run.dir={run_dir}",
        f"paths.data_dir={root / 'data'}",
    ]
    result = run_together({"train": ["scripts/train.py", *overrides]})["train"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.suffix for p in sorted((root / "data" / "tokens").iterdir())] == [".bin", ".json"]
    shutil.rmtree(root / "data")
    return TrainedRun(corpus, run_dir, run_dir / "checkpoints" / "last.ckpt", result)


def logged(run_dir: Path) -> dict[str, list[float]]:
    """TensorBoard's scalars of a run by tag, in order; for text tags, the steps they were logged at."""
    values: dict[str, list[float]] = {}
    for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0, "tensors": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            values.setdefault(tag, []).extend(event.value for event in accumulator.Scalars(tag))
        for tag in accumulator.Tags()["tensors"]:
            values.setdefault(tag, []).extend(float(event.step) for event in accumulator.Tensors(tag))
    return values


def test_char_model_learns_far_below_the_unigram_entropy(trained):
    values = logged(trained.run_dir)
    entropy = unigram_entropy_nats(trained.corpus)  # 2.79 nats; the grammar itself: 0.28
    final_val = values["val/loss"][-1]
    assert final_val < 0.25 * entropy, (final_val, entropy)
    assert values["val/bpc"][-1] == pytest.approx(final_val / math.log(2), rel=1e-5)
    assert values["val/ppl"][-1] == pytest.approx(math.exp(final_val), rel=1e-5)
    assert values["test/loss"][-1] < 0.25 * entropy  # the test split is evaluated after fit
    assert len(values["val/sample/text_summary"]) == 3  # one text sample per validation
    assert "model size:" in trained.result.stdout and "training characters" in trained.result.stdout


def test_checkpoint_holds_the_sorted_vocabulary_as_plain_data(trained):
    checkpoint = torch.load(trained.checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["data"]["vocab"] == sorted(set(trained.corpus))


def test_sample_from_the_checkpoint(trained, tmp_path):
    out = tmp_path / "sample.txt"
    base = ["scripts/sample.py", f"ckpt={trained.checkpoint}", "prime=the big", "length=400", "top_k=3"]
    results = run_together(
        {
            "seed0": [*base, "seed=0"],
            "seed0-again": [*base, "seed=0", f"out={out}"],
            "seed1": [*base, "seed=1"],
        }
    )
    for result in results.values():
        assert result.returncode == 0, result.stderr
    text = results["seed0"].stdout.removesuffix("\n")
    assert text.startswith("the big") and len(text) == len("the big") + 400
    assert set(text) <= set(trained.corpus)
    assert results["seed0-again"].stdout == results["seed0"].stdout  # same seed, same text
    assert out.read_text(encoding="utf-8") == text
    assert results["seed1"].stdout != results["seed0"].stdout
    # The model spells the grammar's words: nearly every complete word sampled is one of them.
    words = text.replace(".", " ").split()[:-1]
    assert sum(word in WORDS for word in words) >= 0.9 * len(words), words


def test_bad_sampling_inputs(trained, tmp_path):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(trained.checkpoint.read_bytes()[:5000])  # a truncated copy
    ckpt = f"ckpt={trained.checkpoint}"
    vocab_size = len(set(trained.corpus))
    cases = {
        "missing": (["ckpt=/no/such/model.ckpt"], ["ckpt='/no/such/model.ckpt' does not exist"]),
        "corrupt": ([f"ckpt={corrupt}"], [f"ckpt={str(corrupt)!r} is not a readable checkpoint"]),
        "prime": ([ckpt, "prime=The Queen"], ["prime='The Queen' has characters outside", "'T', 'Q'"]),
        "top_k-0": ([ckpt, "top_k=0"], ["top_k=0 is invalid: it must be an integer >= 1"]),
        "top_k-big": ([ckpt, f"top_k={vocab_size + 1}"], [f"the vocabulary has {vocab_size} characters"]),
        "temperature": ([ckpt, "temperature=0"], ["temperature=0 is invalid: it must be a number > 0"]),
        "length": ([ckpt, "length=-1"], ["length=-1 is invalid: it must be an integer >= 0"]),
        "no-ckpt": ([], ["ckpt is missing: pass ckpt=PATH"]),
        "out-folder": ([ckpt, "out=/no/such/folder/sample.txt"], ["out='/no/such/folder/sample.txt'"]),
        "device": ([ckpt, "device=cuda:7"], ["device='cuda:7'"]),
    }
    results = run_together({name: ["scripts/sample.py", *args] for name, (args, _) in cases.items()})
    for name, (_, fragments) in cases.items():
        assert_user_error(results[name], *fragments)
        assert results[name].stdout == ""


# -- bad corpora ------------------------------------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


# Six training processes (Lightning's import alone takes seconds each); the same errors are checked
# in-process by test_text_data.py and test_download.py.
@pytest.mark.slow
def test_bad_corpora(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("Ainsi parla Zarathoustra, à l'aube\n".encode("latin-1") * 20)
    (tmp_path / "short.txt").write_text("To be, or not to be.\n" * 20, encoding="utf-8")  # 420 characters
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_text("Not the file you are looking for.\n", encoding="utf-8")
    data_dir = tmp_path / "data"
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=served)
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/input.txt"
    real_sha = hashlib.sha256((served / "input.txt").read_bytes()).hexdigest()

    common = ["trainer.enable_progress_bar=false", f"paths.data_dir={data_dir}"]
    cases = {
        "missing": (["data=text", f"data.path={tmp_path}/nope.txt"], ["nope.txt' does not exist"]),
        "no-path": (["data=text"], ["data.path is missing: data=text needs data.path=FILE"]),
        "empty": (["data=text", f"data.path={tmp_path}/empty.txt"], ["empty.txt' is empty"]),
        "latin1": (["data=text", f"data.path={tmp_path}/latin1.txt"], ["latin1.txt' is not UTF-8 text"]),
        "short": (
            ["data=text", f"data.path={tmp_path}/short.txt", "data.batch_size=8", "seq_length=100"],
            ["the train split has 378 characters", "it needs at least 808 characters"],
        ),
        "bad-hash": (
            ["data=tinyshakespeare", f"data.url={url}"],
            [f"has sha256 {real_sha}, expected 86c4e6aa", "nothing was kept"],
        ),
    }
    try:
        results = run_together(
            # One folder each: runs started together never share one (a second would be refused).
            {
                name: ["scripts/train.py", *args, *common, f"hydra.run.dir={tmp_path}/{name}"]
                for name, (args, _) in cases.items()
            }
        )
    finally:
        server.shutdown()
        server.server_close()
    for name, (_, fragments) in cases.items():
        assert_user_error(results[name], *fragments)
    # The refused download and the refused corpora left nothing behind, not even a partial file; only the
    # good but short corpus got its tokens prepared.
    files = sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*") if p.is_file())
    assert [name.split("-")[0] for name in files] == ["tokens/short", "tokens/short"], files


def test_a_four_letter_corpus_trains_with_the_default_top_k_and_refuses_a_typed_one(tmp_path, run_script):
    # DNA has 4 characters: the text sample's default top_k (5) adapts to them; a top_k typed on the
    # command line is the user's choice and is checked instead.
    rng = random.Random(0)
    corpus = tmp_path / "dna.txt"
    corpus.write_text("".join(rng.choice("ACGT") for _ in range(20000)), encoding="utf-8")
    tiny = [
        "data=text",
        f"data.path={corpus}",
        *SMALL_CORPUS_TRAINING,
        "seq_length=20",
        "model.hidden_size=8",
        "trainer.max_steps=3",
    ]
    trained = run_script("train.py", *tiny, f"hydra.run.dir={tmp_path / 'run'}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "callbacks.text_sample.top_k: 4, the whole vocabulary, rather than 5" in trained.stdout
    typed = run_script(
        "train.py", *tiny, "callbacks.text_sample.top_k=5", f"hydra.run.dir={tmp_path / 'typed'}"
    )
    assert_user_error(typed, "callbacks.text_sample.top_k=5 is invalid", "between 1 and 4")
