"""Progress in logs: with stderr a pipe, plain lines and no carriage returns; at a terminal, the bar."""

import re

from pytorch_lightning.callbacks import TQDMProgressBar

from seqexp.callbacks.progress import LogProgress, progress_bar


def test_piped_stderr_gets_plain_progress_lines_without_carriage_returns(tmp_path, run_script):
    result = run_script(
        "train.py", "data.n_points=600", "seq_length=10", "model.hidden_size=8", "trainer.max_epochs=3",
        "callbacks.progress_bar.interval_s=0", f"hydra.run.dir={tmp_path}/run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\r" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    assert len(lines) >= 30, result.stderr[-2000:]  # 3 epochs of 11 windows, one line per step at interval 0
    assert re.fullmatch(
        r"step 33/33 \(100%\)  loss [\d.e-]+  tokens/s [\d,]+  elapsed 0:\d\d  \(done\)", lines[-1]
    )
    assert any(re.search(r"loss [\d.e-]+  tokens/s [\d,]+  elapsed \S+  ETA \S+$", line) for line in lines)
    assert "validation at step 11: val/loss" in result.stderr


def test_a_terminal_keeps_lightnings_bar(monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert isinstance(progress_bar(refresh_rate=7, interval_s=30.0), TQDMProgressBar)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert isinstance(progress_bar(refresh_rate=10, interval_s=5), LogProgress)


def test_under_a_time_budget_the_percentage_and_eta_follow_the_clock(tmp_path, run_script):
    # max_epochs alone would allow 11,000 steps: the 4-second budget ends the run long before.
    result = run_script(
        "train.py", "data.n_points=600", "seq_length=10", "model.hidden_size=8", "trainer.max_epochs=1000",
        "trainer.max_time=00:00:00:04", "callbacks.progress_bar.interval_s=0.5",
        f"hydra.run.dir={tmp_path}/run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = re.findall(r"step \d+ \((\d+)% of trainer.max_time\).*ETA 0:(\d\d)$", result.stderr, re.M)
    assert len(found) >= 3, result.stderr[-2000:]
    percents, etas = [int(p) for p, _ in found], [int(s) for _, s in found]
    assert percents == sorted(percents) and 0 < percents[-1] <= 100
    assert max(etas) <= 4 and etas == sorted(etas, reverse=True)
    assert "/11000 (" not in result.stderr  # the step count, which does not end the run, is not shown
