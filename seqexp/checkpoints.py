"""Checkpoints written by scripts/train.py: writing them safely, finding one, reading it, rebuilding its
model.

The one home for checkpoint files: sampling, evaluation and resuming all load through here, so a change
to how a model is built (:func:`seqexp.models.sequence_model.build_model`) is made once; training writes
through :class:`AtomicCheckpointIO`.

Checkpoints hold plain containers only, so they load with ``weights_only=True``: nothing in the file
can run code. ``map_location`` brings a model trained on a GPU onto any device.
"""

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from seqexp.data.files import mount_point
from seqexp.data.spec import DataSpec
from seqexp.errors import ConfigError, first_line
from seqexp.models.sequence_model import SequenceModel, build_model
from seqexp.run_layout import BEST, checkpoint_file


def read_checkpoint(
    path: str | Path, key: str = "ckpt", device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """The contents of the checkpoint at ``path`` (a file or a run folder), tensors on ``device``."""
    file = checkpoint_file(path, key)
    try:
        checkpoint = torch.load(file, map_location=device, weights_only=True)
        checkpoint["hyper_parameters"]["model"], checkpoint["hyper_parameters"]["data"]  # noqa: B018
    except Exception as error:  # whatever torch.load or the lookups raise, the file is not a checkpoint
        raise ConfigError(
            f"{key}={str(path)!r} is not a readable checkpoint of scripts/train.py ({first_line(error)})"
        ) from None
    return checkpoint


def model_from_checkpoint(
    checkpoint: dict[str, Any], key: str = "ckpt", path: str | Path = ""
) -> tuple[SequenceModel, DataSpec]:
    """The checkpoint's model, with its weights, in eval mode, and the DataSpec it was trained on."""
    hparams = checkpoint["hyper_parameters"]
    try:
        spec = DataSpec.from_dict(hparams["data"])
        model = build_model(hparams["model"], spec)
        # The LightningModule holds the SequenceModel as ``model``, hence the prefix of its weights.
        model.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()})
    except Exception as error:  # mismatched or missing weights, a broken vocabulary: a corrupt file
        raise ConfigError(
            f"{key}={str(path)!r} is not a consistent checkpoint ({first_line(error)})"
        ) from None
    device = next(iter(checkpoint["state_dict"].values())).device
    return model.to(device).eval(), spec


class NonFiniteWeights(RuntimeError):
    """A checkpoint was about to be written with NaN or infinite weights: the run diverged."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made safe to kill: the file is written beside its destination and
    renamed over it, so a kill at any moment leaves either the previous checkpoint or the new one, never
    half a file. Non-finite weights are refused rather than written over a good checkpoint."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        bad = [name for name, value in checkpoint["state_dict"].items() if not torch.isfinite(value).all()]
        if bad:
            raise NonFiniteWeights(f"not writing {path}: weights {', '.join(bad[:3])} are not finite")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())  # on disk before the rename makes it the checkpoint
            os.replace(partial, path)
        except (OSError, RuntimeError) as raised:
            # torch's writer reports the file's OSError (a full disk, a quota) as its own RuntimeError,
            # with the OSError as context. That is the user's to fix: one line, not 90.
            error = raised if isinstance(raised, OSError) else raised.__context__
            if not isinstance(error, OSError):
                raise
            raise ConfigError(
                f"cannot write the checkpoint {path} on {mount_point(path)}: {error.strerror or error}; any "
                "earlier checkpoint is intact: free some space there (or give hydra.run.dir another disk), "
                "then resume=<this run's folder>"
            ) from None
        finally:
            partial.unlink(missing_ok=True)


def require_finite_weights(model: torch.nn.Module, key: str = "ckpt", path: str | Path = "") -> None:
    """ConfigError when a weight of ``model`` is NaN or infinite: the run diverged before it was saved,
    and every output of the model would be NaN."""
    broken = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if broken:
        raise ConfigError(
            f"{key}={str(path)!r} has NaN or infinite weights ({', '.join(broken[:3])}"
            f"{', ...' if len(broken) > 3 else ''}): its run diverged; use an earlier checkpoint, e.g. the "
            f"{BEST} of the same run folder"
        )
