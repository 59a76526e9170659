"""ssvbench.models."""
