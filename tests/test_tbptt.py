"""Contract 1, the module side: one state per stage, carried and detached, reset at each start."""

import pytest
import pytorch_lightning as pl
import torch

from seqexp.data.sine import SineDataModule
from seqexp.module import SequenceLightningModule
from tests.helpers import model_options, sine_shape

# conf/_model.yaml's options: no dropout, torch's initialisation; the encoder options are unused, the
# inputs being floats.
MODELS = {
    "rnn": model_options("torch.nn.RNN", hidden_size=6, nonlinearity="tanh"),
    "lstm": model_options("torch.nn.LSTM", hidden_size=6, num_layers=2),
    "gru": model_options("torch.nn.GRU", hidden_size=6, num_layers=2),
}


def as_tuple(state):
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


class Recorder:
    """Wraps the model's forward and records, per call, the stage and the state in and out."""

    def __init__(self, module: SequenceLightningModule) -> None:
        self.calls: list[dict] = []
        forward = module.model.forward

        def recording_forward(x, state=None):
            output, new_state = forward(x, state)
            stage = getattr(module.trainer.state.stage, "value", None) if module._trainer else None
            self.calls.append({"stage": stage, "in": state, "out": new_state, "epoch": module.current_epoch})
            return output, new_state

        module.model.forward = recording_forward

    def stage(self, name: str) -> list[dict]:
        return [c for c in self.calls if c["stage"] == name]


def fit(model_cfg: dict, max_epochs: int = 2, val_check_interval: float | int = 1.0):
    pl.seed_everything(0, verbose=False)
    datamodule = SineDataModule(
        **sine_shape(), n_points=700, val_fraction=0.2, batch_size=3, seq_length=10, eval_burn_in=None, seed=0
    )
    module = SequenceLightningModule(
        model=model_cfg,
        data={"input_size": 1, "output_size": 1, "tokens": False},
        optim={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01},
    )
    recorder = Recorder(module)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        val_check_interval=val_check_interval,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(module, datamodule=datamodule)
    return module, recorder, datamodule


@pytest.mark.parametrize("cell", sorted(MODELS))
def test_each_step_starts_from_the_previous_steps_state_detached(cell):
    _, recorder, datamodule = fit(MODELS[cell])
    train = recorder.stage("train")
    per_epoch = len(datamodule.stream("train"))
    assert len(train) == 2 * per_epoch
    for k, call in enumerate(train):
        if k % per_epoch == 0:
            assert call["in"] is None, "the state must be zeros (None) at the start of each epoch"
            continue
        previous = as_tuple(train[k - 1]["out"])
        current = as_tuple(call["in"])
        for before, now in zip(previous, current, strict=True):
            assert torch.equal(before, now), "step k must start from the state step k-1 returned"
            assert before.requires_grad and not now.requires_grad and now.grad_fn is None


def test_no_gradient_flows_from_step_k_into_step_k_minus_1():
    module, recorder, _ = fit(MODELS["lstm"], max_epochs=1)
    state = tuple(s.clone().requires_grad_(True) for s in as_tuple(recorder.stage("train")[2]["in"]))
    x, y = module.trainer.datamodule.stream("train")[3]
    # The module's own step detaches whatever state it holds, so a loss built from it cannot reach
    # tensors of earlier steps: gradients w.r.t. the state it was handed stay empty.
    module.states["train"] = state
    module.train()
    loss, _ = module._step("train", (x, y))
    loss.backward()
    assert all(s.grad is None for s in state)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_validation_mid_epoch_leaves_the_training_state_untouched():
    # Validation every 4 training windows: it runs several times inside each epoch.
    _, recorder, datamodule = fit(MODELS["gru"], max_epochs=1, val_check_interval=4)
    stages = [c["stage"] for c in recorder.calls]
    first_val = stages.index("validate")
    assert first_val > 0 and "train" in stages[first_val:], "validation must run mid-epoch"
    train = recorder.stage("train")
    for k in range(1, len(train)):
        for before, now in zip(as_tuple(train[k - 1]["out"]), as_tuple(train[k]["in"]), strict=True):
            assert torch.equal(before, now)
    # And each validation run starts from zeros and then carries its own state.
    val = recorder.stage("validate")
    per_run = len(datamodule.stream("val"))
    assert len(val) % per_run == 0 and len(val) >= 2 * per_run
    for k, call in enumerate(val):
        if k % per_run == 0:
            assert call["in"] is None
        else:
            assert torch.equal(as_tuple(val[k - 1]["out"])[0], as_tuple(call["in"])[0])


def test_clipping_bounds_the_gradient_norm_the_optimizer_sees():
    pl.seed_everything(0, verbose=False)
    datamodule = SineDataModule(
        **sine_shape(), n_points=400, val_fraction=0.1, batch_size=2, seq_length=10, eval_burn_in=None, seed=0
    )
    module = SequenceLightningModule(
        model=MODELS["lstm"],
        data={"input_size": 1, "output_size": 1, "tokens": False},
        optim={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01},
    )
    seen = []

    class Spy(pl.Callback):
        def on_fit_start(self, trainer, pl_module):
            def hook(optimizer, *_):
                grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
                seen.append(float(torch.nn.utils.get_total_norm(grads)))

            trainer.optimizers[0].register_step_pre_hook(hook)

    logged = []

    class LogSpy(pl.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
            logged.append(float(torch.nn.utils.get_total_norm(grads)))

    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        gradient_clip_val=1e-3,
        gradient_clip_algorithm="norm",
        callbacks=[Spy(), LogSpy()],
    )
    trainer.fit(module, datamodule=datamodule)
    assert seen and max(seen) <= 1e-3 * 1.001
    assert min(logged) > 1e-3, "the norm before clipping exceeds the threshold, so clipping acted"
