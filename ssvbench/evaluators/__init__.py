"""ssvbench.evaluators."""
