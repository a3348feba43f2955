"""Datasets as streams: one module per dataset, each a StreamDataModule (see datamodule.py)."""
