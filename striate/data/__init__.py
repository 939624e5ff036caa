"""Data sets, preprocessing and augmentation, batching (NumPy only)."""
