"""Every run ends with a result (issue 9): a validation at the last step wherever training stops, a stop
on divergence that leaves no NaN on disk, last.ckpt as the latest state, atomic checkpoint writes, and
one folder per run. Resuming and signals are in test_resume.py."""

import contextlib
import math
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from seqexp.app.run_folder import claim_folder
from seqexp.app.run_status import read_status
from seqexp.checkpoints import AtomicCheckpointIO, NonFiniteWeights
from seqexp.errors import ConfigError
from seqexp.module import GRACE_STEPS, SequenceLightningModule
from tests import warm_start
from tests.helpers import (
    REPO,
    SMALL_CORPUS_TRAINING,
    assert_user_error,
    grammar_corpus,
    model_options,
    read_events,
)


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def best_checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("best-step*.ckpt"))


def all_finite(checkpoint: dict) -> bool:
    return all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())


@pytest.mark.parametrize(
    "limits, steps, validations",
    [
        (["trainer.max_steps=5"], 5, 1),  # tiny_sine has 11 windows an epoch: the middle of the first
        # No epoch limit: the steps run on into the second epoch (the first one ends with a validation).
        (["trainer.max_epochs=-1", "trainer.max_steps=16"], 16, 2),
    ],
)
def test_a_run_stopped_by_max_steps_mid_epoch_validates_at_its_last_step(
    run_dir, run_script, tiny_sine, limits, steps, validations
):
    result = run_script("train.py", *tiny_sine, *limits, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    events = read_events(run_dir)
    val = events.Scalars("val/loss")
    assert len(val) == validations and math.isfinite(val[-1].value)
    assert val[-1].step == steps - 1
    status = read_status(run_dir)
    best_val = min(point.value for point in val)
    assert status.status == "ok" and status.objective == pytest.approx(best_val, rel=1e-6)
    assert events.Scalars("hp/best_val_loss")[-1].value == pytest.approx(best_val, rel=1e-6)
    assert last_checkpoint(run_dir)["global_step"] == steps
    (best,) = best_checkpoints(run_dir)
    assert best.name == f"best-step{min(val, key=lambda point: point.value).step + 1}.ckpt"


@pytest.fixture
def small_gru_on_text(tmp_path) -> list[str]:
    """Overrides for a small GRU on a generated corpus of 400 sentences."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(grammar_corpus(400), encoding="utf-8")
    return [
        "data=text",
        f"data.path={corpus}",
        *SMALL_CORPUS_TRAINING,
        "model=gru",
        "model.hidden_size=16",
        "seq_length=20",
        "callbacks.text_sample.prime=the",
        "trainer.enable_progress_bar=false",
    ]


def test_a_text_run_shorter_than_an_epoch_has_a_result_too(tmp_path, run_script, small_gru_on_text):
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        *small_gru_on_text,
        "trainer.max_steps=3",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "diverged" not in result.stderr
    status = read_status(run_dir)
    assert status.status == "ok" and math.isfinite(status.objective)
    assert [e.step for e in read_events(run_dir).Scalars("val/bpc")]  # the final validation was logged


def test_a_nan_loss_stops_the_run_as_diverged_and_leaves_finite_checkpoints(
    tmp_path, run_script, small_gru_on_text
):
    run_dir = tmp_path / "run"
    # Adam steps of 1e30 turn the weights, then the loss, into NaN within a few steps; the text sample
    # callback must not crash on the way out.
    result = run_script(
        "train.py",
        *small_gru_on_text,
        "optim.lr=1e30",
        "trainer.max_epochs=20",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "the run diverged" in result.stderr
    status = read_status(run_dir)
    assert (status.status, status.objective) == ("diverged", None)
    last = last_checkpoint(run_dir)
    assert last["global_step"] < 20  # stopped within a few steps, not at the last epoch
    assert all_finite(last)
    for best in best_checkpoints(run_dir):
        assert all_finite(torch.load(best, weights_only=True))


class _Trainer(SimpleNamespace):
    """The few trainer attributes SequenceLightningModule._diverged reads, for one process."""

    world_size = 1
    global_step = 0


GRACE = [1.0] * (GRACE_STEPS - 1)  # steps 1 .. GRACE_STEPS - 1, where only a non-finite loss stops


@pytest.mark.parametrize(
    ("losses", "blind_guess", "factor", "stops_at"),
    [
        ([1.0, *GRACE, 2.9, 2.0], 0.5, 3.0, None),  # below 3x the first loss: goes on
        ([1.0, *GRACE, 2.9, 3.1], 0.5, 3.0, 11),  # char-rnn's rule: above 3x the first loss
        ([0.1, *GRACE, 1.4, 1.6], 0.5, 3.0, 11),  # an easy first window: 3x the blind guess is the limit
        ([1.0, 9.0, *GRACE[1:], 2.0], 0.5, 3.0, None),  # the first steps may swing
        ([1.0, *GRACE, 50.0, 1e6], 0.5, None, None),  # the rule turned off
        ([1.0, float("nan")], 0.5, None, 1),  # a NaN always stops, even early
        ([float("inf")], 0.5, 3.0, 0),
    ],
)
def test_divergence_rule(losses, blind_guess, factor, stops_at):
    module = SequenceLightningModule(
        model=model_options("torch.nn.RNN", hidden_size=4),
        data={"input_size": 1, "output_size": 1, "tokens": False},
        optim={"lr": 0.01, "weight_decay": 0.0},
        divergence_factor=factor,
    )
    module._trainer = _Trainer(datamodule=SimpleNamespace(blind_guess_loss=lambda: blind_guess))
    verdicts = []
    for step, loss in enumerate(losses):
        module._trainer.global_step = step
        verdicts.append(module._diverged(torch.tensor(loss)))
    assert verdicts.index(True) == stops_at if stops_at is not None else not any(verdicts)
    assert (module.divergence is not None) == (stops_at is not None)


def test_last_checkpoint_is_the_latest_state_even_when_val_loss_got_worse(run_dir, run_script, tiny_sine):
    # Noisy targets and a large learning rate: val/loss does not improve at every epoch.
    overrides = [
        *tiny_sine,
        "data.noise_std=0.5",
        "optim.lr=0.1",
        "trainer.max_epochs=5",
        "divergence_factor=null",
    ]
    result = run_script("train.py", *overrides, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    val = read_events(run_dir).Scalars("val/loss")
    assert len(val) == 5
    assert min(val, key=lambda e: e.value) is not val[-1], (
        "the test needs a run whose last val/loss is not best"
    )
    last = last_checkpoint(run_dir)
    assert (last["epoch"], last["global_step"]) == (4, 5 * 11)
    (best,) = best_checkpoints(run_dir)
    assert torch.load(best, weights_only=True)["global_step"] < last["global_step"]


class _Explodes:
    """Pickling this raises: a write that dies half-way through the file."""

    def __reduce__(self):
        raise OSError("disk gone")


def test_checkpoint_writes_are_atomic_and_refuse_non_finite_weights(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "step": 1}, path)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="cannot write the checkpoint .*: disk gone"):
        io.save_checkpoint(
            {"state_dict": {"w": torch.zeros(3)}, "big": torch.zeros(100_000), "x": _Explodes()}, path
        )
    with pytest.raises(NonFiniteWeights, match="w"):
        io.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, math.nan])}}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no partial file left behind
    assert torch.load(path, weights_only=True)["step"] == 1


def test_a_kill_during_checkpoint_writes_never_leaves_a_broken_last_checkpoint(tmp_path):
    # A real process rewrites a 40 MB checkpoint in a loop and is killed at moments that fall inside a
    # write as often as not (one write takes a good fraction of a second here).
    path = tmp_path / "last.ckpt"
    writer = (
        "import sys, torch\n"
        "from seqexp.checkpoints import AtomicCheckpointIO\n"
        "io = AtomicCheckpointIO()\n"
        "for step in range(10**6):\n"
        "    weights = {'w': torch.full((10**7,), float(step))}\n"
        "    io.save_checkpoint({'state_dict': weights, 'step': step}, sys.argv[1])\n"
        "    print(step, flush=True)\n"
    )
    for delay in (0.0, 0.05, 0.11, 0.17):
        process = warm_start.popen(["-c", writer, path], cwd=REPO, stdout=subprocess.PIPE)
        process.stdout.readline()  # one checkpoint is complete; the next write is under way
        time.sleep(delay)
        process.kill()
        process.wait(timeout=30)
        checkpoint = torch.load(path, weights_only=True)
        assert (checkpoint["state_dict"]["w"] == checkpoint["step"]).all()
        assert [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"] in (
            [],
            [f".last.ckpt.{process.pid}.partial"],
        )
        path.unlink()
        for partial in tmp_path.glob(".*.partial"):
            partial.unlink()


def test_a_named_folder_that_holds_a_run_is_refused_and_left_as_it_was(run_dir, run_script, tiny_sine):
    first = run_script("train.py", *tiny_sine, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-2000:]
    snapshot = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.is_file()}
    second = run_script("train.py", *tiny_sine, "model=gru", f"hydra.run.dir={run_dir}")
    assert_user_error(second, f"hydra.run.dir='{run_dir}' holds another run", "resume=")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.is_file()} == snapshot


def test_generated_folder_names_that_are_taken_move_aside_even_under_a_race(tmp_path):
    folder = tmp_path / "runs" / "12-00-00"
    with ThreadPoolExecutor(max_workers=8) as pool:
        claimed = list(pool.map(lambda _: claim_folder(folder, "hydra.run.dir", generated=True), range(8)))
    assert sorted(claimed) == sorted({folder, *(folder.with_name(f"12-00-00-{n}") for n in range(1, 8))})
    with pytest.raises(ConfigError, match="holds another run"):
        claim_folder(folder, "hydra.run.dir", generated=False)
    old_run = tmp_path / "old"  # a run from before owner markers
    (old_run / ".hydra").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds another run"):
        claim_folder(old_run, "hydra.run.dir", generated=False)
    assert [p.name for p in old_run.iterdir()] == [".hydra"]  # left as it was
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_folder(empty, "hydra.run.dir", generated=False) == empty  # an empty folder is free


def test_two_runs_started_together_get_folders_of_their_own(tmp_path, tiny_sine):
    commands = [
        [REPO / "scripts" / "train.py", *tiny_sine, "trainer.max_epochs=1", f"seed={s}"] for s in (1, 2)
    ]
    for result in warm_start.run_together(commands, cwd=tmp_path, timeout=300):
        assert result.returncode == 0, result.stderr[-2000:]
    folders = sorted(p.parent for p in (tmp_path / "outputs" / "runs").rglob("status.json"))
    assert sorted(OmegaConf.load(folder / ".hydra" / "config.yaml").seed for folder in folders) == [1, 2]
    for folder in folders:
        assert read_status(folder).status == "ok"
        assert len(read_events(folder).Scalars("val/loss")) == 1  # one epoch of one run, not two mixed


def test_a_full_disk_ends_the_run_in_one_line_as_failed(small_disk, run_script, tiny_sine):
    # The run's status, config and events fit on the disk; the checkpoint of a 512-unit LSTM (about 8 MB
    # with Adam's moments) does not.
    run_dir = small_disk / "run"
    result = run_script(
        "train.py", *tiny_sine, "model=lstm", "model.hidden_size=512", f"hydra.run.dir={run_dir}"
    )
    assert_user_error(result, "cannot write the checkpoint", f"on {small_disk}", "No space left on device")
    status = read_status(run_dir)
    assert status.status == "failed" and "No space left on device" in status.error
    assert not list((run_dir / "checkpoints").glob(".*.partial")), "the partial file was left behind"


def test_a_run_started_on_a_full_disk_is_one_line_and_leaves_no_temporary_files(
    small_disk, run_script, tiny_sine
):
    filler = small_disk / "filler"
    with filler.open("wb") as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * 65536)
    run_dir = small_disk / "run"
    result = run_script("train.py", *tiny_sine, f"hydra.run.dir={run_dir}")
    assert_user_error(result, "No space left on device")
    assert not [p for p in small_disk.rglob("*") if p.name.startswith(".") and p.name != ".owner"]
    filler.unlink()  # with room again, the same command runs in a folder of its own
    assert run_script("train.py", *tiny_sine, f"hydra.run.dir={small_disk / 'again'}").returncode == 0
