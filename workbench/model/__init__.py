"""The captioner: PCM mix-up, the encoder-decoder and its layers, decoding, losses, vocabulary, save / load."""
