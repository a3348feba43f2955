"""Contract 1: contiguous rows, sharded by rank, windows in order, every rank the same batch count."""

import pytest
import torch

from seqexp.data.sine import SineDataModule
from seqexp.data.streams import WindowStream, rank_rows
from seqexp.errors import ConfigError
from tests.helpers import sine_shape


def windows(stream: WindowStream) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [stream[k] for k in range(len(stream))]


def test_row_j_of_batch_k_continues_row_j_of_batch_k_minus_1():
    series = torch.arange(1000)
    stream = WindowStream(series, batch_size=4, seq_length=7)
    batches = windows(stream)
    assert len(batches) > 3
    for (x_prev, _), (x, _) in zip(batches, batches[1:], strict=False):
        # Each row picks up exactly where the same row of the previous batch stopped.
        assert torch.equal(x[:, 0], x_prev[:, -1] + 1)
    for x, y in batches:
        assert torch.equal(y, x + 1)  # targets are the inputs one step ahead
    # Row j of all batches, concatenated, is one contiguous stretch of the series.
    row_length = 1000 // 4
    for j in range(4):
        joined = torch.cat([x[j] for x, _ in batches])
        assert torch.equal(joined, torch.arange(j * row_length, j * row_length + len(joined)))


def test_rank_shards_are_disjoint_and_their_union_is_the_single_process_layout():
    series = torch.arange(1003)
    single = rank_rows(series, batch_size=6, world_size=1)
    shards = [rank_rows(series, batch_size=2, world_size=3, rank=r) for r in range(3)]
    assert torch.equal(torch.cat(shards), single)
    flat = [set(s.flatten().tolist()) for s in shards]
    assert not (flat[0] & flat[1]) and not (flat[1] & flat[2]) and not (flat[0] & flat[2])


@pytest.mark.parametrize("n_items", [500, 997, 1234])
def test_every_rank_gets_the_same_number_of_equal_batches(n_items):
    series = torch.arange(n_items)
    streams = [WindowStream(series, 3, 10, world_size=4, rank=r) for r in range(4)]
    assert len({len(s) for s in streams}) == 1
    assert {tuple(x.shape) for s in streams for x, _ in windows(s)} == {(3, 10)}
    # Windows of 2 ranks x batch B are exactly the windows of 1 rank x batch 2B, split by rows.
    merged = WindowStream(series, 6, 10, world_size=2, rank=0)
    halves = [WindowStream(series, 3, 10, world_size=4, rank=r) for r in (0, 1)]
    for k in range(len(merged)):
        assert torch.equal(merged[k][0], torch.cat([halves[0][k][0], halves[1][k][0]]))


def test_float_series_keep_their_feature_dimension():
    series = torch.randn(400, 1)
    x, y = WindowStream(series, 2, 5)[0]
    assert x.shape == (2, 5, 1) and y.shape == (2, 5, 1)


def test_a_series_too_short_for_one_window_is_refused_with_the_needed_length():
    with pytest.raises(ConfigError, match=r"has 40 items.*needs at least 84"):
        WindowStream(torch.arange(40), batch_size=4, seq_length=20)


def test_the_dataloader_serves_the_windows_in_order_without_copies():
    datamodule = SineDataModule(
        **sine_shape(), n_points=800, val_fraction=0.1, batch_size=4, seq_length=10, eval_burn_in=None, seed=0
    )
    loader = datamodule.train_dataloader()
    stream = datamodule.stream("train")
    served = list(loader)
    assert len(served) == len(stream)
    storage = datamodule.splits["train"].untyped_storage().data_ptr()
    for k, (x, y) in enumerate(served):
        assert torch.equal(x, stream[k][0]) and torch.equal(y, stream[k][1])
        assert x.untyped_storage().data_ptr() == storage  # a view of the split, not a copy


def test_an_aligned_target_series_is_windowed_at_the_same_offsets_as_the_inputs():
    series, targets = torch.arange(1000), -torch.arange(1000)
    plain = WindowStream(series, batch_size=3, seq_length=7, world_size=2, rank=1)
    paired = WindowStream(series, batch_size=3, seq_length=7, world_size=2, rank=1, targets=targets)
    assert len(paired) == len(plain)  # the same rows and windows as next-step prediction
    for k in range(len(paired)):
        x, y = paired[k]
        assert torch.equal(x, plain[k][0]) and torch.equal(y, -x)


def test_echo_targets_are_the_inputs_delay_steps_earlier_in_every_split():
    from seqexp.data.echo import EchoDataModule

    datamodule = EchoDataModule(
        delay=5, noise=0.0, n_points=1000, val_fraction=0.1, batch_size=2, seq_length=10, eval_burn_in=1,
        seed=0,
    )  # fmt: skip
    datamodule.setup()
    inputs = torch.cat([datamodule.splits["train"], datamodule.splits["val"]])
    targets = torch.cat([datamodule.targets["train"], datamodule.targets["val"]])
    assert torch.equal(targets[5:], inputs[:-5]) and not targets[:5].any()
    assert set(inputs.flatten().tolist()) == {-1.0, 1.0} and abs(float(inputs.mean())) < 0.15  # random signs
    # The windows the model trains on carry the same pairing.
    x, y = datamodule.stream("train")[3]
    assert x.shape == y.shape == (2, 10, 1)
    assert torch.equal(y[:, 5:], x[:, :-5])
    # The held-out stretch's first targets echo the end of the training stretch.
    val_inputs, val_targets = datamodule.aligned("val")
    assert torch.equal(val_targets[:5], datamodule.splits["train"][-5:])
    assert len(val_inputs) == len(val_targets) == 100


def test_echo_noise_is_added_to_the_targets_only():
    from seqexp.data.echo import echo_series

    clean_x, clean_y = echo_series(500, delay=3, noise=0.0, seed=1)
    noisy_x, noisy_y = echo_series(500, delay=3, noise=0.1, seed=1)
    assert torch.equal(noisy_x, clean_x)
    assert float((noisy_y - clean_y).std()) == pytest.approx(0.1, rel=0.2)


def test_next_step_datasets_are_aligned_with_their_next_item():
    datamodule = SineDataModule(
        **sine_shape(), n_points=400, val_fraction=0.1, batch_size=2, seq_length=10, eval_burn_in=None, seed=0
    )
    inputs, targets = datamodule.aligned("val")
    assert torch.equal(targets[:-1], inputs[1:])
