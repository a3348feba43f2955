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
