"""Where a run's record goes: the loggers of conf/logger/ (one module each: tensorboard, files, mlflow,
wandb), the run's own metrics file that every run writes whatever loggers it has (files.py), and what the
callbacks show through all of them (run_log.py)."""
