"""Data: downloads with checksums, MNIST-style image sets, 2-D toy distributions and small demo images (chapters 01, 05, 07)."""
