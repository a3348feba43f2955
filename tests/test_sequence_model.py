"""SequenceModel's input dropout: what the core receives in training and in evaluation, and the models
of checkpoints written before model.input_dropout existed."""

import torch

from seqexp.data.spec import DataSpec
from seqexp.models.sequence_model import build_model
from tests.helpers import model_options

TEXT = DataSpec(input_size=20, output_size=20, tokens=True)


def core_inputs(model: torch.nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the encoder gives and what the core receives, for one forward."""
    seen: list[torch.Tensor] = []
    hook = model.core.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    try:
        model(tokens)
    finally:
        hook.remove()
    return model.encoder(tokens).detach(), seen[0]


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


def test_a_checkpoint_written_before_input_dropout_existed_builds_its_model():
    # Checkpoints keep the model's options as they were: older ones have no input_dropout.
    options = model_options("torch.nn.LSTM", 8, encoder="embedding")
    del options["input_dropout"]
    model = build_model(options, TEXT)
    assert model.input_dropout.p == 0.0
    reference = build_model(model_options("torch.nn.LSTM", 8, encoder="embedding"), TEXT)
    reference.load_state_dict(model.state_dict())  # the same parameters: nothing was added or renamed
