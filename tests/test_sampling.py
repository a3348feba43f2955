"""Sampling (in-process): determinism, greedy and top-k, the option checks, checkpoint loading errors and
the TensorBoard text-sample callback."""

from types import SimpleNamespace

import pytest
import torch

from seqexp.app.devices import choose_device
from seqexp.callbacks.text_sample import TextSample
from seqexp.data.spec import DataSpec
from seqexp.data.vocab import Vocab
from seqexp.errors import ConfigError
from seqexp.models.sequence_model import SequenceModel
from seqexp.sampling import next_token, sample_text
from seqexp.sampling_options import check_sampling_options
from seqexp.tasks.sample import load_text_model
from tests.helpers import model_options

VOCAB = Vocab("\n !,.?abcdefghijklmnopqrstuvwxyz")


@pytest.fixture
def model() -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(
        input_size=len(VOCAB), output_size=len(VOCAB), tokens=True, **model_options("torch.nn.LSTM", 32, 2)
    )


def test_same_seed_same_text_other_seed_other_text(model):
    a = sample_text(model, VOCAB, "the ", 200, top_k=None, temperature=1.0, seed=0)
    assert a == sample_text(model, VOCAB, "the ", 200, top_k=None, temperature=1.0, seed=0)
    assert a != sample_text(model, VOCAB, "the ", 200, top_k=None, temperature=1.0, seed=1)
    assert a.startswith("the ") and len(a) == 204 and set(a) <= set(VOCAB.chars)


def test_greedy_follows_the_argmax_step_by_step(model):
    text = sample_text(model, VOCAB, "hello", 30, top_k=1, temperature=1.0, seed=0)
    # No randomness left.
    assert text == sample_text(model, VOCAB, "hello", 30, top_k=1, temperature=1.0, seed=123)
    model.eval()
    ids = VOCAB.encode("hello").tolist()
    for expected in text[5:]:
        logits, _ = model(torch.tensor([ids]))
        ids.append(int(logits[0, -1].argmax()))
        assert VOCAB.chars[ids[-1]] == expected


def test_top_k_draws_only_among_the_k_likeliest():
    logits = torch.tensor([0.0, 2.0, -1.0, 1.5, 1.9, 0.5])
    generator = torch.Generator().manual_seed(0)
    drawn = {int(next_token(logits, 3, 1.0, generator)) for _ in range(300)}
    assert drawn == {1, 3, 4}  # every one of the 3 likeliest shows up, nothing else does
    assert {int(next_token(logits, 1, 1.0, generator)) for _ in range(20)} == {1}


def test_low_temperature_approaches_greedy(model):
    greedy = sample_text(model, VOCAB, "so ", 50, top_k=1, temperature=1.0, seed=0)
    assert sample_text(model, VOCAB, "so ", 50, top_k=None, temperature=1e-4, seed=7) == greedy


def test_sampling_restores_the_model_mode_and_the_onednn_switch(model):
    model.train()
    enabled = torch.backends.mkldnn.enabled
    sample_text(model, VOCAB, "a", 5, top_k=None, temperature=1.0, seed=0)
    assert model.training and torch.backends.mkldnn.enabled == enabled


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"length": -1}, "length=-1 is invalid: it must be an integer >= 0"),
        ({"temperature": 0}, "temperature=0 is invalid: it must be a number > 0"),
        ({"temperature": -0.5}, "temperature=-0.5 is invalid"),
        ({"top_k": 0}, "top_k=0 is invalid: it must be an integer >= 1"),
        (
            {"top_k": 33},
            "top_k=33 is invalid: the vocabulary has 32 characters, so it must be between 1 and 32",
        ),
        ({"prime": ""}, "prime='' is invalid: it must be a non-empty string"),
        (
            {"prime": "Hi, Zoë"},
            "prime='Hi, Zoë' has characters outside the model's vocabulary: 'H', 'Z', 'ë'",
        ),
    ],
)
def test_bad_sampling_options_are_named(options, message):
    values = {"prime": "the", "length": 10, "top_k": 5, "temperature": 1.0, **options}
    with pytest.raises(ConfigError) as error:
        check_sampling_options(**values, tokenizer=VOCAB)
    assert message in str(error.value)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"ckpt='.*nope.ckpt' does not exist: give a checkpoint"):
        load_text_model(str(tmp_path / "nope.ckpt"), torch.device("cpu"))
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip archive" * 10)
    with pytest.raises(ConfigError, match=r"is not a readable checkpoint of scripts/train.py"):
        load_text_model(str(corrupt), torch.device("cpu"))
    sine = tmp_path / "sine.ckpt"
    torch.save({"hyper_parameters": {"model": {}, "data": {"tokens": False}}, "state_dict": {}}, sine)
    with pytest.raises(ConfigError, match=r"holds a model of float data"):
        load_text_model(str(sine), torch.device("cpu"))


class Recorder:
    """A logger that takes text (seqexp.trackers.run_log.MediaLogger) and records it."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str, int]] = []

    def show_figure(self, tag: str, image: object, step: int) -> None:
        raise AssertionError("a text sample draws no figure")

    def show_text(self, tag: str, text: str, step: int) -> None:
        self.texts.append((tag, text, step))


def test_text_sample_callback_logs_text_and_ignores_float_data(model):
    logger = Recorder()
    trainer = SimpleNamespace(
        sanity_checking=False, global_step=7, state=SimpleNamespace(fn=None), loggers=[logger]
    )
    callback = TextSample(prime="to be", length=40, top_k=3, temperature=1.0, seed=0)

    sine = SimpleNamespace(spec=DataSpec(input_size=1, output_size=1, tokens=False))
    callback.setup(trainer, sine, "fit")
    callback.on_validation_end(trainer, sine)
    assert logger.texts == []

    text = SimpleNamespace(spec=DataSpec(len(VOCAB), len(VOCAB), tokens=True, vocab=VOCAB.chars), model=model)
    callback.setup(trainer, text, "fit")
    callback.on_validation_end(trainer, text)
    expected = sample_text(model, VOCAB, "to be", 40, top_k=3, temperature=1.0, seed=0)
    assert logger.texts == [("val/sample", expected, 7)]


def test_text_sample_callback_refuses_a_prime_the_corpus_cannot_encode():
    callback = TextSample(prime="The", length=300, top_k=5, temperature=1.0, seed=0)
    module = SimpleNamespace(spec=DataSpec(len(VOCAB), len(VOCAB), tokens=True, vocab=VOCAB.chars))
    with pytest.raises(
        ConfigError, match=r"callbacks.text_sample.prime='The' has characters outside .*: 'T'"
    ):
        callback.setup(None, module, "fit")


def test_device_option_is_checked():
    assert choose_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"device='gpu0' is invalid: use cpu, cuda or cuda:N"):
        choose_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(
            ConfigError, match=r"device='cuda' is not available on this machine: use device=cpu"
        ):
            choose_device("cuda")
