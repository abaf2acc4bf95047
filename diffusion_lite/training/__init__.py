"""Training: the loop that fits a denoiser, and the recipes of the book's shared models (chapter 07; later distillation)."""
