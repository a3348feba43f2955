"""seqexp's Optuna sweeper, where Hydra looks for plugins (see optuna_sweeper.py)."""
