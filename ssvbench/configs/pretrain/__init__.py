"""The shipped pre-training recipes (`ssvbench pretrain --config NAME[:runlocal]`)."""
