"""Evaluation: the MNIST judge classifier, garbage images it must reject, and distribution metrics on its features (chapters 07, 09; later 14)."""
