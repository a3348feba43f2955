"""data=echo through the app: input/target streams under DDP, and the memory task's claim."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from seqexp.data.streams import WindowStream
from tests.helpers import compose_train, read_events

# dropout 0 and the same seed: 2 ranks x batch B must train exactly like 1 rank x batch 2B.
ECHO = [
    "data=echo",
    "data.delay=5",
    "data.n_points=1200",
    "model=gru",
    "model.hidden_size=8",
    "seq_length=10",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "+callbacks.spy._target_=tests.spies.PairRecorder",
]


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in read_events(run_dir).Scalars(tag)]


@pytest.mark.slow
def test_input_target_data_on_two_ddp_ranks_trains_like_one_process_with_twice_the_batch(
    tmp_path: Path, run_script
):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    result = run_script(
        "train.py",
        *ECHO,
        "data.batch_size=4",
        f"+callbacks.spy.out_dir={single}/batches",
        f"hydra.run.dir={single}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_script(
        "train.py", *ECHO, "trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=2",
        f"+callbacks.spy.out_dir={ddp}/batches", f"hydra.run.dir={ddp}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    single_train, ddp_train = scalars(single, "train/loss"), scalars(ddp, "train/loss")
    assert len(single_train) == len(ddp_train) > 20
    for (step_a, loss_a), (step_b, loss_b) in zip(single_train, ddp_train, strict=True):
        assert step_a == step_b and loss_b == pytest.approx(loss_a, abs=1e-5)
    single_val, ddp_val = scalars(single, "val/loss"), scalars(ddp, "val/loss")
    assert [v for _, v in ddp_val] == pytest.approx([v for _, v in single_val], abs=1e-6)

    # Each rank trained on its own rows of inputs and, at the same offsets, their echoes.
    datamodule = instantiate(compose_train(ECHO, tmp_path / "composed").data)  # the runs' series
    datamodule.setup()
    inputs, targets = datamodule.splits["train"], datamodule.targets["train"]
    rank_batches = [torch.load(ddp / "batches" / f"rank{r}.pt") for r in (0, 1)]
    for rank, batches in enumerate(rank_batches):
        stream = WindowStream(inputs, 2, 10, world_size=2, rank=rank, targets=targets)
        expected = [stream[k] for k in range(len(stream))] * 2  # two epochs
        assert len(batches) == len(expected)
        for (x, y), (x_expected, y_expected) in zip(batches, expected, strict=True):
            assert torch.equal(x, x_expected) and torch.equal(y, y_expected)
            assert torch.equal(y[:, 5:], x[:, :-5])  # the echo, 5 steps later
    for k, (x, y) in enumerate(torch.load(single / "batches" / "rank0.pt")):
        assert torch.equal(x, torch.cat([rank_batches[0][k][0], rank_batches[1][k][0]]))
        assert torch.equal(y, torch.cat([rank_batches[0][k][1], rank_batches[1][k][1]]))
