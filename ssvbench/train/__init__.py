"""ssvbench.train."""
