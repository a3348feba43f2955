"""experiment=tinyshakespeare_cpu (bf16), tinyshakespeare_cpu_fp32 and the GPU twin compose and train a
few steps. Their results are measured by hand (README, "tinyshakespeare on a CPU in 10 minutes"); here the
text is a small corpus of our own, since tinyshakespeare is sha256-checked and may not be on the
machine."""

import pytest

from tests.helpers import grammar_corpus, read_events

FEW_STEPS = [
    "trainer.max_steps=3",
    "trainer.val_check_interval=3",
    "trainer.limit_val_batches=2",
    "callbacks.text_sample.length=20",
    "trainer.enable_progress_bar=false",
    # The presets' 2 threads in each of the two test workers would put 4 on 2 cores, where OpenMP's
    # threads wait on each other: 50 s a case in CI instead of 12.
    "threads=1",
]


@pytest.mark.parametrize(
    "preset, adapt",
    [
        ("tinyshakespeare_cpu", []),
        ("tinyshakespeare_cpu_fp32", []),
        # No GPU here: the twin runs on the CPU at a small size, its precision (bf16-mixed) kept.
        ("tinyshakespeare_gpu", ["trainer=cpu", "model.hidden_size=16", "data.batch_size=4"]),
    ],
)
def test_the_preset_trains_a_few_steps(tmp_path, run_script, preset, adapt):
    (tmp_path / "input.txt").write_text(grammar_corpus(12000), encoding="utf-8")
    run = tmp_path / "run"
    result = run_script(
        "train.py", f"experiment={preset}", "data=text", "data.path=input.txt", *adapt, *FEW_STEPS,
        f"hydra.run.dir={run}", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    events = read_events(run)
    (scored,) = events.Scalars("val/loss")  # one validation, at the end of the 3 steps
    assert 0 < scored.value < 10
    assert (run / "checkpoints" / "last.ckpt").is_file()
