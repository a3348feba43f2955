"""Callbacks that show what a model does: sine-fit figures, text samples and throughput in TensorBoard."""
