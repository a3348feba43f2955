"""Placement and scale: real DDP processes (gloo on CPU), Hydra + DDP folders, submitit, GPU/bf16."""

import re
from pathlib import Path

import pytest
import torch

from seqexp.data.sine import sine_series
from seqexp.data.streams import WindowStream
from tests.helpers import job_folder, model_options, read_events, sine_shape

# dropout 0 and the same seed: 2 ranks x batch B must train exactly like 1 rank x batch 2B.
EQUIVALENCE = [
    "model=lstm",
    "model.hidden_size=8",
    "model.num_layers=2",
    "model.dropout=0",
    "seq_length=10",
    "data.n_points=1000",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
]


def losses(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in read_events(run_dir).Scalars(tag)]


def test_two_ddp_ranks_train_like_one_process_with_twice_the_batch(tmp_path: Path, run_script):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    spy = "+callbacks.spy._target_=tests.spies.BatchRecorder"
    result = run_script(
        "train.py", *EQUIVALENCE, "data.batch_size=4", spy, f"+callbacks.spy.out_dir={single}/batches",
        f"hydra.run.dir={single}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_script(
        "train.py", *EQUIVALENCE, "trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=2", spy,
        f"+callbacks.spy.out_dir={ddp}/batches", f"hydra.run.dir={ddp}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    single_train, ddp_train = losses(single, "train/loss"), losses(ddp, "train/loss")
    assert len(single_train) == len(ddp_train) > 20
    for (step_a, loss_a), (step_b, loss_b) in zip(single_train, ddp_train, strict=True):
        assert step_a == step_b and loss_b == pytest.approx(loss_a, abs=1e-5)
    single_val, ddp_val = losses(single, "val/loss"), losses(ddp, "val/loss")
    assert [v for _, v in ddp_val] == pytest.approx([v for _, v in single_val], abs=1e-6)

    # Each rank saw only its own contiguous rows, and together exactly the single process's batches.
    train_split = sine_series(1000, **sine_shape(), seed=0)[: 1000 - int(1000 * 0.2)]
    rank_batches = [torch.load(ddp / "batches" / f"rank{r}.pt") for r in (0, 1)]
    for rank, batches in enumerate(rank_batches):
        stream = WindowStream(train_split, batch_size=2, seq_length=10, world_size=2, rank=rank)
        expected = [stream[k][0] for k in range(len(stream))] * 2  # two epochs
        assert len(batches) == len(expected)
        assert all(torch.equal(a, b) for a, b in zip(batches, expected, strict=True))
    single_batches = torch.load(single / "batches" / "rank0.pt")
    for k, batch in enumerate(single_batches):
        assert torch.equal(batch, torch.cat([rank_batches[0][k], rank_batches[1][k]]))


def test_a_ddp_sweep_leaves_one_folder_per_job_written_by_rank_zero(tmp_path: Path, run_script):
    # Run from an empty folder: a rank that composed its own run would leave outputs/ here.
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py", "-m", "model=rnn,gru", "trainer=ddp_cpu", "model.hidden_size=8", "seq_length=20",
        "data.n_points=1200", "data.batch_size=2", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    assert sorted(p.name for p in sweep.iterdir() if not p.name.startswith(".")) == [
        "0_model=rnn",
        "1_model=gru",
        "multirun.yaml",
    ]
    for job in ("0", "1"):
        job_dir = job_folder(sweep, job)
        assert (job_dir / "train_rank1.log").is_file(), "rank 1 ran inside this job's folder"
        events = list((job_dir / "tensorboard").glob("events.out.tfevents.*"))
        writers = {re.match(r"events\.out\.tfevents\.\d+\.[^.]+\.(\d+)\.", e.name).group(1) for e in events}
        assert len(writers) == 1, f"events written by more than one process: {events}"
        assert "val/loss" in read_events(job_dir).Tags()["scalars"]
        assert len(list((job_dir / "checkpoints").glob("best-*.ckpt"))) == 1


def test_submitit_local_multirun_runs_both_jobs(tmp_path: Path, run_script):
    import pickle

    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py", "-m", "hydra/launcher=submitit_local", "model=rnn,gru", "model.hidden_size=8",
        "seq_length=20", "data.n_points=600", "data.batch_size=2", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    returned = []
    for result_file in sorted((sweep / ".submitit").glob("*/*_result.pkl")):
        status, job_return = pickle.loads(result_file.read_bytes())
        assert status == "success"
        returned.append(job_return.return_value)
    assert len(returned) == 2
    best = sorted(min(v for _, v in losses(job_folder(sweep, job), "val/loss")) for job in ("0", "1"))
    assert sorted(returned) == pytest.approx(best, rel=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_mixed_training_on_gpu_learns_and_keeps_state_across_windows():
    import pytorch_lightning as pl

    from seqexp.data.sine import SineDataModule
    from seqexp.module import SequenceLightningModule

    pl.seed_everything(0, verbose=False)
    module = SequenceLightningModule(
        model=model_options("torch.nn.LSTM", hidden_size=32, num_layers=2),
        data={"input_size": 1, "output_size": 1, "tokens": False},
        optim={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01},
    )
    trainer = pl.Trainer(
        accelerator="gpu", devices=1, precision="bf16-mixed", max_epochs=5, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, use_distributed_sampler=False,
        gradient_clip_val=1.0,
    )  # fmt: skip
    datamodule = SineDataModule(
        **sine_shape(), n_points=2000, val_fraction=0.1, batch_size=4, seq_length=20, eval_burn_in=1, seed=0
    )
    trainer.fit(module, datamodule=datamodule)
    assert module.device.type == "cuda"
    val_loss = float(trainer.callback_metrics["val/loss"])
    assert val_loss < 0.05, val_loss  # a sine that is learned, not noise (variance 0.5)
    assert module.states["train"] is not None and module.states["train"][0].is_cuda


def test_the_slurm_launcher_asks_for_one_task_per_gpu_on_each_node():
    from hydra import compose, initialize_config_dir

    from tests.helpers import REPO

    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.use_distributed_sampler is False
