"""Built-in layers: dense, activations, convolutions and pools (a file per dimension: conv1d, conv2d),
shapes, dropout, normalization, embeddings, layers made of layers, attention, recurrent, augmentation."""
