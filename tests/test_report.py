"""scripts/report.py: a real sweep with a failed and a diverged job, then runs built by hand for the
cases a sweep rarely produces (damaged files, stray events, runs still going)."""

import csv
import itertools
import json
import math
import os
import random
import socket
import subprocess
import sys

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from seqexp.report.leaderboard import build_leaderboard
from seqexp.report.plots import (
    AGAINST_PARAMETERS,
    AGAINST_THROUGHPUT,
    AGAINST_TIME,
    CURVES,
    GRAD_FLOW,
    loss_against_time,
)
from seqexp.report.runs import find_runs
from tests.helpers import job_folder, read_events, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ASK = "give a multirun folder or a folder of runs"


def read_csv(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_a_sweep_with_a_failed_and_a_diverged_job_gets_a_full_leaderboard(
    tmp_path, run_script, tiny_sine, best_val_loss
):
    sweep = tmp_path / "sweep"
    # Job 2 diverges (Adam steps of 1e30); job 3 fails on purpose (a negative lr is refused).
    lrs = "optim.lr=0.01,0.003,1e30,-1"
    result = run_script("train.py", "-m", lrs, f"hydra.sweep.dir={sweep}", *tiny_sine)
    assert result.returncode != 0  # Hydra reports the failed job once every job has run
    assert "error: optim.lr=-1 is invalid" in result.stderr

    report = run_script("report.py", str(sweep))
    assert report.returncode == 0, report.stderr
    rows = read_csv(sweep / "leaderboard.csv")
    by_run = {row["run"].split("_", 1)[0]: row for row in rows}  # folders: <job>_<overrides>
    assert sorted(by_run) == ["0", "1", "2", "3"]

    # Ranked by the best val/loss, read here independently from each job's events.
    best = {job: best_val_loss(job_folder(sweep, job)) for job in ("0", "1")}
    assert [row["run"].split("_", 1)[0] for row in rows[:2]] == sorted(best, key=best.get)
    assert float(rows[0]["best val/loss"]) == pytest.approx(min(best.values()), rel=1e-6)
    assert float(rows[0]["best val/mse"]) == pytest.approx(min(best.values()), rel=1e-6)  # sine: the same

    assert (by_run["2"]["status"], by_run["2"]["best val/loss"]) == ("diverged", "")
    assert by_run["3"]["status"] == "failed"
    assert by_run["3"]["note"].startswith("ConfigError: optim.lr=-1 is invalid")
    assert [row["run"].split("_", 1)[0] for row in rows[2:]] == ["2", "3"]  # no best loss: last, in job order

    # Only the override that differs gets a column; the tiny-data ones are the same for every job.
    assert [by_run[job]["optim.lr"] for job in "0123"] == ["0.01", "0.003", "1e+30", "-1"]
    assert "data.n_points" not in rows[0]
    # nn.RNN(1 -> 8): 8 + 64 + 2 x 8 weights and biases, plus the Linear head 8 + 1.
    assert by_run["0"]["parameters"] == "97"
    assert float(by_run["0"]["tokens/s"]) > 0
    assert float(by_run["0"]["wall time (s)"]) > 0

    markdown = (sweep / "leaderboard.md").read_text()
    assert markdown.startswith("| run | status |") and markdown.count("\n| ") == 4  # one line per job
    assert "| 3_optim.lr=-1 | failed |" in markdown
    assert "failed" in report.stdout and "leaderboard.md" in report.stdout
    for chart in (CURVES, AGAINST_TIME, AGAINST_PARAMETERS, AGAINST_THROUGHPUT, GRAD_FLOW):
        assert (sweep / chart).read_bytes().startswith(PNG_SIGNATURE)

    # The diagnostics' columns: the last memory_steps and forecast_mse, the final model's.
    events = read_events(sweep / rows[0]["run"])
    assert int(rows[0]["memory_steps"]) == int(events.Scalars("val/memory_steps")[-1].value)
    assert float(rows[0]["forecast_mse"]) == pytest.approx(events.Scalars("val/forecast_mse")[-1].value)
    assert "| memory_steps | forecast_mse |" in markdown


# -- runs built by hand ---------------------------------------------------------------------------
def make_run(folder, overrides, scalars=None, status=None, config=True, cell="torch.nn.GRU", data=None):
    """A run folder as the train task leaves it: .hydra/, status.json, tensorboard/ events.

    ``scalars``: ``{tag: [value at step 0, value at step 1, ...]}``.
    """
    (folder / ".hydra").mkdir(parents=True)
    if config:
        saved = {"model": {"cell": cell}, **({"data": data} if data else {})}
        OmegaConf.save(saved, folder / ".hydra" / "config.yaml")
    OmegaConf.save(overrides, folder / ".hydra" / "overrides.yaml")
    if status:
        base = {"started": 1.0, "host": socket.gethostname(), "pid": os.getpid()}
        (folder / "status.json").write_text(json.dumps({**base, **status}))
    if scalars:
        writer = EventFileWriter(str(folder / "tensorboard"))
        for tag, values in scalars.items():
            for step, value in enumerate(values):
                summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
                writer.add_event(Event(wall_time=100.0 + step, step=step, summary=summary))
        writer.close()
    return folder


def record_starts(events):
    """The byte offsets at which the records of an undamaged event file start, from TensorBoard's own
    reader: each record is its data framed by a length, two checksums (16 bytes)."""
    records = list(RawEventFileLoader(str(events)).Load())
    return list(itertools.accumulate((16 + len(record) for record in records), initial=0))[:-1]


def overwrite_middle(run, seed):
    """Random bytes (from ``seed``) written over the middle of the run's event file, as a bad disk or a
    stray write would leave it. Returns the file and where the record holding those bytes starts."""
    (events,) = (run / "tensorboard").glob("events.out.tfevents.*")
    starts = record_starts(events)
    data = bytearray(events.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = random.Random(seed).randbytes(16)
    events.write_bytes(data)
    assert len(record_starts(events)) < len(starts)  # TensorBoard's reader stops there, without a word
    return events, max(start for start in starts if start <= middle)


def test_text_runs_rank_by_bits_per_character_and_name_their_tokenizer(tmp_path, capsys):
    # A bpe token holds about two characters: its loss per token is higher, its bpc lower.
    ok = {"status": "ok", "finished": 9.0}
    char = {"val/loss": [1.6, 1.5], "val/bpc": [2.31, 2.16]}
    bpe = {"val/loss": [3.4, 3.0], "val/bpc": [2.5, 2.1]}
    make_run(tmp_path / "char", ["data=tinyshakespeare"], char, ok, data={"tokenizer": "char"})
    make_run(tmp_path / "bpe", ["data=tinyshakespeare", "data.tokenizer=bpe", "data.vocab_size=512"], bpe, ok,
             data={"tokenizer": "bpe", "vocab_size": 512})  # fmt: skip
    make_run(tmp_path / "old", ["data=tinyshakespeare"], {"val/loss": [1.7], "val/bpc": [2.45]}, ok)

    code, _, err = report(tmp_path, capsys)
    assert (code, err) == (0, [])
    rows = read_csv(tmp_path / "leaderboard.csv")
    assert [(r["run"], r["tokenizer"]) for r in rows] == [
        ("bpe", "bpe 512"),
        ("char", "char"),
        ("old", "char"),
    ]
    assert (
        "data.tokenizer" not in rows[0] and "data.vocab_size" not in rows[0]
    )  # the tokenizer column says it


def test_text_runs_get_bpc_at_the_best_loss_and_every_state_is_listed(tmp_path, capsys):
    text = {"val/loss": [2.0, 1.2, 1.5], "val/bpc": [2.9, 1.7, 2.2], "model/parameters": [1000]}
    fast = {"val/loss": [1.9, 1.1], "train/tokens_per_s": [5, 7, 100]}
    other = ["optim.lr=0.3", "seed=1"]
    ok = {"status": "ok", "finished": 9.0}
    make_run(tmp_path / "a", ["optim.lr=0.1", "seed=1"], text, ok, cell="my.LSTM")
    make_run(tmp_path / "b", ["optim.lr=0.2", "seed=1"], fast)
    make_run(tmp_path / "c", other, status={"status": "failed", "error": "RuntimeError: boom"})
    make_run(tmp_path / "d", other, status={"status": "running"})  # this very process
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    make_run(tmp_path / "e", other, status={"status": "running", "pid": int(ended.stdout)})
    make_run(tmp_path / "f", other)

    code, out, err = report(tmp_path, capsys)
    assert (code, err) == (0, [])
    rows = read_csv(tmp_path / "leaderboard.csv")
    assert [(r["run"], r["status"]) for r in rows] == [
        ("b", "unknown"),  # events without status.json or final metrics
        ("a", "ok"),
        ("c", "failed"),
        ("d", "running"),
        ("e", "killed"),  # "running", but its process is gone
        ("f", "no events"),
    ]
    b, a = rows[0], rows[1]
    assert (float(a["best val/loss"]), float(a["final val/loss"])) == pytest.approx((1.2, 1.5))
    assert float(a["best val/bpc"]) == pytest.approx(1.7)  # at the step of the best loss
    assert b["best val/bpc"] == ""  # b logged no val/bpc
    # The cell comes from the config, as no override names the model.
    assert (a["parameters"], a["cell"], a["optim.lr"], b["cell"]) == ("1000", "LSTM", "0.1", "GRU")
    assert "seed" not in a  # the same in every run
    assert float(b["tokens/s"]) == pytest.approx(7)  # the median over epochs
    assert float(b["wall time (s)"]) == pytest.approx(2.0)  # first to last event
    assert rows[2]["note"] == "RuntimeError: boom"
    assert "killed" in rows[4]["note"]
    console = [line.split()[:2] for line in out.splitlines()]
    assert console[:3] == [["run", "status"], ["b", "unknown"], ["a", "ok"]]


def test_loss_against_time_takes_the_best_run_of_each_cell_in_minutes_since_its_first_event(tmp_path):
    # make_run logs step k at 100 + k seconds; the first event of each run is its step 0.
    make_run(tmp_path / "gru_good", ["seed=1"], {"val/loss": [3.0, 2.0, 1.5, 1.0]})
    make_run(tmp_path / "gru_worse", ["seed=2"], {"val/loss": [3.0, 2.5]})
    make_run(tmp_path / "lstm", ["seed=3"], {"val/loss": [2.0, math.nan, 1.2]}, cell="torch.nn.LSTM")
    make_run(
        tmp_path / "rnn_failed", ["seed=4"], status={"status": "failed", "error": "boom"}, cell="torch.nn.RNN"
    )
    # debug=fast logs no scalars: its result is only in status.json, and it has no curve.
    make_run(
        tmp_path / "peephole_fast", ["seed=5"], status={"status": "ok", "objective": 0.5}, cell="x.Peephole"
    )
    runs, _, _ = find_runs(tmp_path)
    curves = loss_against_time(runs, build_leaderboard(runs))
    assert sorted(curves) == ["GRU", "LSTM"]  # one curve per cell that has a finite val/loss
    gru, lstm = curves["GRU"], curves["LSTM"]
    assert gru.row.run == "gru_good" and gru.losses == pytest.approx([3.0, 2.0, 1.5, 1.0])
    assert gru.minutes == pytest.approx([0, 1 / 60, 2 / 60, 3 / 60])
    assert lstm.losses == pytest.approx([2.0, 1.2]) and lstm.minutes == pytest.approx(
        [0, 2 / 60]
    )  # the NaN left out


def test_loss_against_time_takes_every_run_where_all_are_of_one_cell(tmp_path):
    # A search over one cell's recipe (README "tinyshakespeare on a CPU in 10 minutes"): the best run of
    # the one cell alone would hide what the search compared.
    make_run(tmp_path / "slow_start", ["seed=1"], {"val/loss": [3.0, 2.0, 1.2]})
    make_run(tmp_path / "fast_start", ["seed=2"], {"val/loss": [2.5, 1.5]})
    make_run(tmp_path / "failed", ["seed=3"], status={"status": "failed", "error": "boom"})
    runs, _, _ = find_runs(tmp_path)
    curves = loss_against_time(runs, build_leaderboard(runs))
    assert list(curves) == ["slow_start", "fast_start"]  # best first; the failed run has no curve
    assert curves["fast_start"].losses == pytest.approx([2.5, 1.5])
    assert curves["fast_start"].minutes == pytest.approx([0, 1 / 60])
    assert {curve.row.cell for curve in curves.values()} == {"GRU"}


def test_a_missing_folder_is_one_error_line_and_a_non_zero_exit(tmp_path, capsys):
    code, out, err = report(tmp_path / "nowhere", capsys)
    assert (code, out) == (2, "")
    assert err == [f"error: {tmp_path / 'nowhere'} does not exist: {ASK}"]

    (tmp_path / "file").write_text("")
    code, _, err = report(tmp_path / "file", capsys)
    assert code == 2 and len(err) == 1 and "is not a folder" in err[0]


def test_a_folder_without_runs_is_one_error_line(tmp_path, capsys):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    code, out, err = report(tmp_path / "empty", capsys)
    assert (code, out) == (2, "")
    assert len(err) == 1 and err[0].startswith("error: no runs to report under")
    assert not (tmp_path / "empty" / "leaderboard.md").exists()


def test_damaged_runs_get_one_line_each_and_the_readable_ones_are_reported(tmp_path, capsys):
    make_run(tmp_path / "good", ["model=gru"], {"val/loss": [0.5, 0.25]}, {"status": "ok", "finished": 2.0})
    make_run(tmp_path / "no_config", ["model=rnn"], {"val/loss": [0.1]}, config=False)
    garbled = make_run(tmp_path / "garbled", ["model=lstm"], config=True)
    (garbled / "tensorboard").mkdir()
    (garbled / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"not an event file at all")
    damaged = make_run(tmp_path / "bad_status", ["model=rnn"], {"val/loss": [0.4]})
    (damaged / "status.json").write_text("{half a fi")
    make_run(tmp_path / "stray", ["x=1"], {"val/loss": [0.3]})
    (tmp_path / "stray" / ".hydra").rename(tmp_path / "stray" / "hydra")  # only events are left

    code, _, err = report(tmp_path, capsys)
    assert code == 0
    assert sorted(err) == sorted(
        [
            f"skipped {tmp_path / 'no_config'}: no .hydra/config.yaml",
            f"skipped {tmp_path / 'stray' / 'tensorboard'}: TensorBoard events outside any run folder "
            "(one with .hydra/config.yaml)",
            "warning: garbled: events in tensorboard/ are unreadable (ValueError: No event timestamp could "
            "be found); listed without metrics",
            f"warning: bad_status: {damaged / 'status.json'} is not a valid status file: "
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1); "
            "its state is judged from its events",
        ]
    )
    rows = {row["run"]: row for row in read_csv(tmp_path / "leaderboard.csv")}
    assert sorted(rows) == ["bad_status", "garbled", "good"]
    assert rows["garbled"]["status"] == "unreadable events"
    assert rows["bad_status"]["status"] == "unknown"
    assert float(rows["good"]["best val/loss"]) == 0.25


def test_the_script_reports_a_missing_folder_without_a_traceback(tmp_path, run_script):
    result = run_script("report.py", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere'} does not exist: {ASK}"]


def test_a_run_whose_events_were_cut_short_is_flagged_and_ranked_by_its_status_objective(tmp_path, capsys):
    # The events of "cut" end before its best validation, which its status.json still records: the
    # report warns, shows the objective, and ranks by it. A run without a best checkpoint reports its
    # final val/loss as objective, above its best: that is no loss of points.
    losses = [0.5, 0.3, 0.2, 0.1]
    cut = make_run(tmp_path / "cut", ["seed=1"], {"val/loss": losses}, {"status": "ok", "objective": 0.1})
    events = next((cut / "tensorboard").glob("events.out.tfevents.*"))
    starts = record_starts(events)
    events.write_bytes(events.read_bytes()[: events.stat().st_size * 2 // 3])
    make_run(tmp_path / "whole", ["seed=2"], {"val/loss": [0.4, 0.15]}, {"status": "ok", "objective": 0.15})
    make_run(
        tmp_path / "final", ["seed=3"], {"val/loss": [0.3, 0.2, 0.25]}, {"status": "ok", "objective": 0.25}
    )

    code, _, err = report(tmp_path, capsys)
    assert code == 0
    cut_best = find_runs(tmp_path)[0][0].best("val/loss")
    assert cut_best is not None and cut_best[1] > 0.1  # the cut really lost the best point
    size = events.stat().st_size
    assert err == [
        f"warning: cut: tensorboard/{events.name} ends inside a record at byte "
        f"{max(s for s in starts if s < size)} of {size} (cut short mid-write): its last events are lost; "
        f"its events are incomplete: their best val/loss is {cut_best[1]:.6g}, status.json says 0.1 (shown)"
    ]
    rows = read_csv(tmp_path / "leaderboard.csv")
    assert [row["run"] for row in rows] == ["cut", "whole", "final"]
    assert [row["status"] for row in rows] == ["ok, events cut short", "ok", "ok"]
    assert float(rows[0]["best val/loss"]) == 0.1
    assert [float(row["best val/loss"]) for row in rows[1:]] == pytest.approx([0.15, 0.2])


def test_events_overwritten_in_the_middle_are_flagged_whatever_status_json_says(tmp_path, capsys):
    # None of these runs has an objective in status.json to betray the lost points: only the event
    # files' own checksums do. "whole" is the same run, undamaged.
    losses = [1.0 / (step + 1) for step in range(40)]
    statuses = {
        "interrupted": {"status": "interrupted", "signal": 15},
        "failed": {"status": "failed", "error": "RuntimeError: boom"},
        "no_status": None,
        "ok_null": {"status": "ok", "objective": None},
        "whole": {"status": "ok", "objective": None},
    }
    damaged = {}
    for seed, (name, status) in enumerate(statuses.items()):
        run = make_run(tmp_path / name, [f"seed={seed}"], {"val/loss": losses}, status)
        if name != "whole":
            events, start = overwrite_middle(run, seed)
            damaged[name] = f"tensorboard/{events.name} is damaged at byte {start} of {events.stat().st_size}"
    lost = "(a record fails its checksum): the events from there on are lost"

    code, _, err = report(tmp_path, capsys)
    assert code == 0
    assert sorted(err) == sorted(f"warning: {name}: {where} {lost}" for name, where in damaged.items())
    rows = {row["run"]: row for row in read_csv(tmp_path / "leaderboard.csv")}
    assert {name: row["status"] for name, row in rows.items()} == {
        "interrupted": "interrupted, damaged events",
        "failed": "failed, damaged events",
        "no_status": "unknown, damaged events",
        "ok_null": "ok, damaged events",
        "whole": "ok",
    }
    assert rows["failed"]["note"] == f"RuntimeError: boom; {damaged['failed']} {lost}"
    assert rows["ok_null"]["note"] == f"{damaged['ok_null']} {lost}"
    assert rows["interrupted"]["note"].endswith(f"checkpoint; {damaged['interrupted']} {lost}")
    assert rows["whole"]["note"] == ""
    # What was read is only the start of the record: the final val/loss shown is not the run's last.
    assert float(rows["whole"]["final val/loss"]) == pytest.approx(losses[-1])
    assert float(rows["ok_null"]["final val/loss"]) > losses[-1]
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "| ok_null | ok, damaged events |" in markdown and "| whole | ok |" in markdown


def test_a_file_cut_short_is_worded_apart_from_overwritten_bytes_and_a_live_writer_is_not_flagged(
    tmp_path, capsys
):
    losses = [0.5, 0.4, 0.3, 0.2]
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    cuts = {
        "killed": {"status": "running", "pid": int(ended.stdout)},  # its process is gone mid-write
        "running": {"status": "running"},  # this very process: its writer may be mid-record
    }
    cut_at = {}
    for name, status in cuts.items():
        run = make_run(tmp_path / name, [f"run={name}"], {"val/loss": losses}, status)
        (events,) = (run / "tensorboard").glob("events.out.tfevents.*")
        cut_at[name] = events, record_starts(events)[-1]
        events.write_bytes(events.read_bytes()[:-3])  # the last record loses the end of its checksum
    # A crash of the machine: the last blocks of the file were allocated but never written.
    crashed = make_run(tmp_path / "crashed", ["run=crashed"], {"val/loss": losses}, {"status": "ok"})
    (zeroed,) = (crashed / "tensorboard").glob("events.out.tfevents.*")
    zeroed_at = record_starts(zeroed)[-2]
    zeroed.write_bytes(zeroed.read_bytes()[:zeroed_at] + bytes(100))

    code, _, err = report(tmp_path, capsys)
    assert code == 0
    killed, killed_at = cut_at["killed"]
    assert sorted(err) == [
        f"warning: crashed: tensorboard/{zeroed.name} ends inside a record at byte {zeroed_at} of "
        f"{zeroed_at + 100} (cut short mid-write): its last events are lost",
        f"warning: killed: tensorboard/{killed.name} ends inside a record at byte {killed_at} of "
        f"{killed.stat().st_size} (cut short mid-write): its last events are lost",
    ]
    rows = {row["run"]: row for row in read_csv(tmp_path / "leaderboard.csv")}
    assert {name: row["status"] for name, row in rows.items()} == {
        "killed": "killed, events cut short",
        "running": "running",
        "crashed": "ok, events cut short",
    }
    assert rows["running"]["note"] == ""
