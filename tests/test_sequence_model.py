"""SequenceModel's dropouts: what the core and the head receive in training and in evaluation, per step or
per window (model.variational_dropout), the recurrent weights the core runs with (model.weight_dropout),
and the models of checkpoints written before those keys existed."""

import pytest
import torch

from seqexp.data.spec import DataSpec
from seqexp.errors import ConfigError
from seqexp.models.sequence_model import SequenceModel, build_model, dropconnect_mask
from tests.helpers import model_options

TEXT = DataSpec(input_size=20, output_size=20, tokens=True)


def given_and_received(
    model: torch.nn.Module, tokens: torch.Tensor, giver: torch.nn.Module, receiver: torch.nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``giver`` outputs and what ``receiver`` is given, for one forward: a dropout between them is
    the difference."""
    seen: dict[str, torch.Tensor] = {}
    # A hook that returns a value replaces the module's output or input: these store and return None.
    hooks = [
        giver.register_forward_hook(
            lambda _, args, out: seen.update(given=(out[0] if isinstance(out, tuple) else out).detach())
        ),
        receiver.register_forward_pre_hook(lambda _, args: seen.update(received=args[0].detach())),
    ]
    try:
        model(tokens)
    finally:
        for hook in hooks:
            hook.remove()
    return seen["given"], seen["received"]


def core_inputs(model: SequenceModel, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the encoder gives and what the core receives."""
    return given_and_received(model, tokens, model.encoder, model.core)


def head_inputs(model: SequenceModel, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the core gives and what the head receives."""
    return given_and_received(model, tokens, model.core, model.head)


def test_input_dropout_drops_the_cores_input_in_training_only():
    torch.manual_seed(0)
    model = build_model(model_options("torch.nn.GRU", 8, encoder="embedding", input_dropout=0.5), TEXT)
    tokens = torch.randint(0, 20, (16, 50))
    embedded, received = core_inputs(model.train(), tokens)
    dropped = received == 0
    # Inverted dropout: what survives is scaled by 1 / (1 - p), so the expected input is unchanged.
    torch.testing.assert_close(received[~dropped], 2 * embedded[~dropped])
    assert 0.45 < dropped.float().mean() < 0.55
    embedded, received = core_inputs(model.eval(), tokens)
    torch.testing.assert_close(received, embedded, rtol=0, atol=0)


def test_no_input_dropout_leaves_training_and_its_random_numbers_as_they_were():
    # 0, the default, must not draw from the generator: runs and their exact resumes stay as they were.
    torch.manual_seed(0)
    model = build_model(model_options("torch.nn.GRU", 8, encoder="embedding"), TEXT).train()
    tokens = torch.randint(0, 20, (4, 10))
    before = torch.get_rng_state()
    embedded, received = core_inputs(model, tokens)
    assert torch.equal(torch.get_rng_state(), before)
    torch.testing.assert_close(received, embedded, rtol=0, atol=0)


@pytest.mark.parametrize("variational", [False, True])
def test_variational_dropout_drops_a_unit_for_the_whole_window_of_its_row(variational):
    torch.manual_seed(0)
    dropouts = dict(input_dropout=0.5, dropout=0.5, variational_dropout=variational)
    options = model_options("torch.nn.GRU", 64, encoder="embedding", **dropouts)
    model = build_model(options, TEXT).train()
    tokens = torch.randint(0, 20, (16, 50))
    for inputs in (core_inputs, head_inputs):
        given, received = inputs(model, tokens)
        dropped = received == 0
        torch.testing.assert_close(received[~dropped], 2 * given[~dropped])
        assert 0.4 < dropped.float().mean() < 0.6
        # Per window: a row's unit is dropped at every step or at none; per step, at about half of them.
        same_at_every_step = (dropped == dropped[:, :1]).all(dim=1)
        assert same_at_every_step.all() == variational
        if variational:  # and the rows draw their own masks
            assert not (dropped[1:, 0] == dropped[:1, 0]).all()
    model.eval()
    for inputs in (core_inputs, head_inputs):
        given, received = inputs(model, tokens)
        torch.testing.assert_close(received, given, rtol=0, atol=0)


def test_a_checkpoint_written_before_input_dropout_existed_builds_its_model():
    # Checkpoints keep the model's options as they were: older ones have no input_dropout,
    # variational_dropout or weight_dropout, and trained with none of them.
    options = model_options("torch.nn.LSTM", 8, encoder="embedding", dropout=0.2)
    del options["input_dropout"], options["variational_dropout"], options["weight_dropout"]
    model = build_model(options, TEXT)
    assert model.input_dropout.p == 0.0
    assert model.weight_dropout == 0.0
    assert type(model.dropout) is torch.nn.Dropout
    reference = build_model(model_options("torch.nn.LSTM", 8, encoder="embedding"), TEXT)
    reference.load_state_dict(model.state_dict())  # the same parameters: nothing was added or renamed


@pytest.mark.parametrize("cell", ["torch.nn.GRU", "torch.nn.LSTM", "seqexp.models.peephole.PeepholeLSTM"])
def test_weight_dropout_runs_the_core_with_its_recurrent_weights_dropped_in_training_only(cell):
    torch.manual_seed(0)
    model = build_model(model_options(cell, 16, 2, encoder="embedding", weight_dropout=0.5), TEXT).train()
    tokens = torch.randint(0, 20, (4, 30))
    state = torch.get_rng_state()
    output, _ = model(tokens)
    # The same draws by hand: one mask per recurrent weight and window, in the order of the parameters.
    torch.set_rng_state(state)
    masks = {}
    for name in ("weight_hh_l0", "weight_hh_l1"):
        weight = model.core.get_parameter(name)
        masks[name] = dropconnect_mask(weight, 0.5)
    by_hand = build_model(model_options(cell, 16, 2, encoder="embedding"), TEXT).eval()
    by_hand.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, mask in masks.items():
            by_hand.core.get_parameter(name).mul_(mask)
    torch.testing.assert_close(output, by_hand(tokens)[0])
    assert 0.45 < (masks["weight_hh_l0"] == 0).float().mean() < 0.55
    # The gradient reaches the weights the window used, and none of those it dropped.
    output.square().sum().backward()
    for name, mask in masks.items():
        gradient = model.core.get_parameter(name).grad
        assert (gradient[mask == 0] == 0).all() and (gradient[mask != 0] != 0).float().mean() > 0.9
    # Every window draws afresh, and evaluation runs the weights as they are.
    assert not torch.equal(model(tokens)[0], output)
    plain = build_model(model_options(cell, 16, 2, encoder="embedding"), TEXT).eval()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(model.eval()(tokens)[0], plain(tokens)[0], rtol=0, atol=0)


def test_weight_dropout_under_bf16_autocast_drops_the_weight_the_core_runs_with():
    # The weight is dropped in bf16, the dtype autocast runs the core in, so that it is cast once per window
    # rather than at every step; the mask is the same one.
    torch.manual_seed(0)
    model = build_model(
        model_options("torch.nn.GRU", 16, encoder="embedding", weight_dropout=0.5), TEXT
    ).train()
    state = torch.get_rng_state()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (dropped,) = model.dropped_recurrent_weights().values()
    assert dropped.dtype == torch.bfloat16
    torch.set_rng_state(state)
    weight = model.core.weight_hh_l0.to(torch.bfloat16)
    expected = (weight * dropconnect_mask(weight, 0.5)).float()
    torch.testing.assert_close(dropped.float(), expected)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_a_dropconnect_mask_drops_each_entry_with_probability_p_independently_and_scales_the_rest(p):
    torch.manual_seed(0)
    weight = torch.empty(1000, 401)  # an odd count: the last 64-bit draw is used in part
    mask = dropconnect_mask(weight, p)
    assert mask.shape == weight.shape and mask.dtype == weight.dtype
    kept = mask != 0
    torch.testing.assert_close(mask[kept], torch.full_like(mask[kept], 1 / (1 - p)), rtol=1e-4, atol=0)
    # Each 64-bit draw gives four 16-bit levels; a level that came out biased (a sign bit never set, say)
    # would show in its own quarter of the entries. 100,250 entries each: the standard error is <= 0.0016.
    flat = kept.flatten().float()
    for lane in range(4):
        assert abs(flat[lane::4].mean().item() - (1 - p)) < 0.01, lane
    # Neighbours, within a draw and across draws, are kept together as often as independence says.
    both = (flat[:-1] * flat[1:]).mean().item()
    assert abs(both - (1 - p) ** 2) < 0.01
    # A fresh mask at every call, and the same one from the same generator state.
    state = torch.get_rng_state()
    again = dropconnect_mask(weight, p)
    assert not torch.equal(again, mask)
    torch.set_rng_state(state)
    torch.testing.assert_close(dropconnect_mask(weight, p), again, rtol=0, atol=0)


def test_a_dropconnect_mask_follows_the_weight_dtype():
    mask = dropconnect_mask(torch.empty(64, 32, dtype=torch.bfloat16), 0.3)
    assert mask.dtype == torch.bfloat16
    zero, scale = mask.unique().tolist()
    assert zero == 0 and scale == pytest.approx(1 / 0.7, rel=1e-2)  # bf16 keeps 8 bits of the scale


class NoRecurrentWeights(torch.nn.RNN):
    """A cell whose hidden-to-hidden weights go by another name: weight dropout has nothing to drop."""

    def named_parameters(self, *args, **kwargs):
        for name, parameter in super().named_parameters(*args, **kwargs):
            yield name.replace("weight_hh", "recurrent"), parameter


def test_weight_dropout_for_a_cell_without_recurrent_weights_is_a_config_error():
    cell = f"{__name__}.NoRecurrentWeights"
    with pytest.raises(ConfigError, match=r"model.weight_dropout=0.3 drops the weight_hh_l\* parameters"):
        build_model(model_options(cell, 8, weight_dropout=0.3), TEXT)
    assert build_model(model_options(cell, 8), TEXT).weight_dropout == 0.0
