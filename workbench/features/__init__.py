"""Features: cached CLIP features of image and caption sets, and the concept bank (nouns and their embeddings)."""
