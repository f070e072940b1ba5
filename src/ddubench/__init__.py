"""ddubench: a reproducible benchmark suite for DDU-Net and its baselines."""

__version__ = "0.1.0"
