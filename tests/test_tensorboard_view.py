"""What a user sees in TensorBoard, read through a real `tensorboard` server on 127.0.0.1: run names that
say what was chosen, a custom-scalars layout, and the scalars, images, text and hparams of both kinds
of data. Also the run-folder names themselves."""

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from seqexp.app.run_names import readable_overrides, register_resolvers, run_name
from tests.helpers import SMALL_CORPUS_TRAINING, compose_train, grammar_corpus


def test_run_names_leave_out_what_was_not_chosen_and_shorten_long_floats(monkeypatch):
    assert run_name("gru", "shakespeare", None) == "gru_shakespeare"
    assert run_name("rnn", "sine", "sine_seed") == "rnn_sine_sine_seed"
    monkeypatch.setattr(sys, "argv", ["train.py", "-m", "data.n_points=600", "model=rnn,gru"])
    name = readable_overrides("data.n_points=600,model=gru,optim.lr=0.0031234567891,data.path=a/b.txt")
    assert name == "model=gru,optim.lr=0.003123,data.path=a-b.txt"
    assert len(readable_overrides(",".join(f"key{i}=value{i}" for i in range(50)))) == 120


@pytest.mark.parametrize(
    ("overrides", "ending"),
    [
        (["data=tinyshakespeare"], "_gru_tinyshakespeare"),  # characters, the default, say nothing
        (
            ["data=tinyshakespeare", "data.tokenizer=bpe", "data.vocab_size=512"],
            "_gru_tinyshakespeare_bpe512",
        ),
        (
            ["experiment=shakespeare_quick", "data.tokenizer=word"],
            "_gru_shakespeare_word1024_shakespeare_quick",
        ),
        ([], "_rnn_sine"),  # no tokenizer at all
    ],
)
def test_a_run_folder_names_a_word_or_bpe_tokenizer(tmp_path, overrides, ending):
    from hydra.core.hydra_config import HydraConfig

    register_resolvers()
    cfg = compose_train(["model=gru", *overrides] if overrides else [], tmp_path, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        assert cfg.hydra.run.dir.endswith(ending), cfg.hydra.run.dir
    finally:
        HydraConfig.instance().cfg = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(base: str, route: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-TensorBoard-Feature-Flags": "{}"} if body else {}
    request = urllib.request.Request(base + route, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def two_runs(tmp_path, run_script) -> Path:
    """A sine RNN and a text GRU trained from an empty folder, as a user would: outputs/runs/<date>/..."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(grammar_corpus(800), encoding="utf-8")
    budget = ["trainer.max_steps=20", "trainer.val_check_interval=10", "model.hidden_size=8"]
    for overrides in (
        ["data.n_points=800", "seq_length=10"],
        ["model=gru", "data=text", f"data.path={corpus}", *SMALL_CORPUS_TRAINING, "data.batch_size=8"],
    ):
        result = run_script("train.py", *overrides, *budget)
        assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "outputs"


@pytest.mark.slow  # two runs and a TensorBoard server: about 30 s on 2 shared cores
def test_tensorboard_serves_named_runs_a_layout_and_every_tab(two_runs):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(two_runs), "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        runs: list = []
        for _ in range(120):  # the server starts, then loads the events
            with contextlib.suppress(OSError):
                runs = get(base, "/data/runs")
            if len(runs) == 2:
                break
            time.sleep(0.5)
        names = sorted(runs, key=lambda run: "sine" not in run)
        assert len(names) == 2, runs
        assert names[0].startswith("runs/") and names[0].endswith("_rnn_sine/tensorboard"), names
        assert names[1].endswith("_gru_text/tensorboard"), names
        sine, text = names

        scalars = get(base, "/data/plugin/scalars/tags")
        assert {"train/loss", "val/loss", "val/mse"} <= set(scalars[sine])
        assert {"train/loss", "val/loss", "val/bpc", "val/ppl"} <= set(scalars[text])
        series = get(base, f"/data/plugin/scalars/scalars?run={urllib.parse.quote(text)}&tag=val/loss")
        assert len(series) == 2 and series[1][2] < series[0][2]  # two validations; the loss fell

        layout = get(base, "/data/plugin/custom_scalars/layout")
        (category,) = layout["category"]
        first = category["chart"][0]
        assert first["title"] == "loss (train, val)"
        assert first["multiline"]["tag"] == ["train/loss", "val/loss"]
        assert [chart["title"] for chart in category["chart"][1:3]] in (["val/mse", "train/grad_norm"],
                                                                        ["val/bpc", "val/ppl"])  # fmt: skip

        assert "val/forecast" in get(base, "/data/plugin/images/tags")[sine]  # the fit beside the forecast
        assert "val/sample/text_summary" in get(base, "/data/plugin/text/tags")[text]
        experiment = get(base, "/data/plugin/hparams/experiment", {"experimentName": ""})
        hparams = {info["name"] for info in experiment["hparamInfos"]}
        assert {"model.hidden_size", "seq_length", "data"} <= hparams
        listing = get(base, "/data/plugins_listing")
        assert all(
            listing[name]["enabled"] for name in ("scalars", "custom_scalars", "images", "text", "hparams")
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
