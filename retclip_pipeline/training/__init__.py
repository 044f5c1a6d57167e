"""Training RET-CLIP: the loop (trainer.py), device and precision, the data order, the
optimiser, checkpoints with exact resume, the out-of-memory retry and torchrun."""
