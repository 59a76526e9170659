"""ssvbench.methods."""
