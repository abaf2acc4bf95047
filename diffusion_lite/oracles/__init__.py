"""Exact answers to check learned ones against: Gaussian mixtures with closed-form scores and posteriors (chapters 03, 05, 08; later the empirical optimal denoiser)."""
