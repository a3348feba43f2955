"""Reading a run back from W&B's offline files and from MLflow, for the tests of the trackers."""

import json
import struct
from pathlib import Path


def wandb_records(run_file: Path) -> list:
    """The records of an offline W&B run file, parsed with W&B's own protobuf messages. (wandb 0.31 ships
    no Python reader for the file's framing, LevelDB's log format after a 7-byte header.)"""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", run_file
    records, pending, position, block = [], b"", 7, 32768
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = struct.unpack_from("<HB", data, position + 4)
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # full, or last of a fragmented record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def _nested(items) -> dict:
    """A W&B record's items as the dict that was logged: ``nested_key`` is the path into it."""
    logged: dict = {}
    for item in items:
        *parents, leaf = [item.key] if item.key else list(item.nested_key)
        target = logged
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = json.loads(item.value_json)
    return logged


def wandb_runs(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("wandb/offline-run-*"))


def wandb_history(run_dir: Path) -> list[dict]:
    """Every history row of the run's offline W&B runs, oldest first."""
    return [
        _nested(record.history.item)
        for run in wandb_runs(run_dir)
        for record in wandb_records(next(run.glob("run-*.wandb")))
        if record.WhichOneof("record_type") == "history"
    ]


def wandb_config_and_summary(run_dir: Path) -> tuple[dict, dict]:
    config, summary = {}, {}
    for run in wandb_runs(run_dir):
        for record in wandb_records(next(run.glob("run-*.wandb"))):
            kind = record.WhichOneof("record_type")
            if kind == "config":
                config.update(_nested(record.config.update))
            elif kind == "summary":
                summary.update(_nested(record.summary.update))
    return config, summary


def mlflow_steps(tracking_uri: str, run_id: str, name: str) -> list[int]:
    """The steps of every point MLflow holds for ``name``, in step order (a repeated step repeats)."""
    from mlflow import MlflowClient

    return sorted(metric.step for metric in MlflowClient(tracking_uri).get_metric_history(run_id, name))
