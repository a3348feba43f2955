"""seqexp: configuration-driven experiments with recurrent sequence models."""
