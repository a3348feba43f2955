"""The Hydra tasks behind the scripts: a config in, one job done (train, sample, eval), a result out."""
