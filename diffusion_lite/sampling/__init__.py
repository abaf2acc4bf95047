"""Samplers: the shared loop helpers, DDPM, DDIM and its inversion, probability-flow ODE solvers and Langevin dynamics (chapters 05, 08, 09; later guidance and editing)."""
