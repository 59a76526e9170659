"""ssvbench: self-supervised video representation learning, benchmarked under one protocol."""

__version__ = "0.1.0"
