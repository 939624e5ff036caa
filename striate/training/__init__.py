"""Training and evaluation loops, callbacks, metrics, checkpoints."""
