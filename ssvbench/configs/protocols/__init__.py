"""The versioned evaluation protocols (`ssvbench evaluate --protocol NAME`)."""
