"""Networks that predict the noise: time embeddings, the MLP for 2-D data, attention and the U-Net (chapters 05-07; later the text encoder and the autoencoder)."""
