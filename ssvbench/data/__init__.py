"""Data: dataset indexes (which videos, labels, splits), preparation, and the grain pipeline."""
