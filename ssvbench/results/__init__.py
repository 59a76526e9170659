"""ssvbench.results."""
