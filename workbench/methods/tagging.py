"""Object tags for SynTIC's auxiliary feature (Eq. 4): the paper's DETR, through ``transformers``.

    tagger = DetrTagger("facebook/detr-resnet-50", threshold=0.7, max_tags=5)    # paper profile
    names = tagger.tags(images)                      # list of lists of class names, best first, deduplicated
    emb = tagger.embeddings(images, clip)            # [B, max_tags, D] CLIP text embeddings, zero rows = none

The sandbox uses a zero-shot CLIP tagger over the concept bank instead (``syntic.tag_scores``): a detector
trained on real photos knows no sandbox shapes. The checkpoint is loaded with ``from_pretrained`` (offline:
a local folder or the hub cache); tests use a tiny random DETR saved locally.
"""
from __future__ import annotations

import numpy as np
import torch


def _rgb(image):
    """A uint8 array, a PIL image or an image path -> something np.asarray makes [H, W, 3] of."""
    import os
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image
        return Image.open(image).convert("RGB")
    return image.convert("RGB") if hasattr(image, "convert") else image


class DetrTagger:
    def __init__(self, model_id: str, threshold: float = 0.7, max_tags: int = 5, batch_size: int = 16,
                 device: str | None = None):
        from transformers import AutoImageProcessor, AutoModelForObjectDetection
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold={threshold} must be in [0, 1] (DETR's demo uses 0.7).")
        self.model = AutoModelForObjectDetection.from_pretrained(model_id).eval()
        self.processor = AutoImageProcessor.from_pretrained(model_id)
        if device:
            self.model.to(device)
        self.threshold, self.max_tags, self.batch_size = threshold, max_tags, batch_size
        self.labels = self.model.config.id2label

    @torch.no_grad()
    def tags(self, images) -> list:
        """Class names of the detections with score >= threshold, best first, deduplicated, at most ``max_tags``
        per image; ``images``: uint8 [B, H, W, 3] or a list of PIL images."""
        out = []
        dev = next(self.model.parameters()).device
        for s in range(0, len(images), self.batch_size):
            batch = [np.array(_rgb(im)) for im in images[s:s + self.batch_size]]      # writable copies
            inputs = self.processor(images=batch, return_tensors="pt").to(dev)
            res = self.processor.post_process_object_detection(
                self.model(**inputs), threshold=self.threshold, target_sizes=[im.shape[:2] for im in batch])
            for r in res:
                names = [self.labels[int(i)] for i in r["labels"][r["scores"].argsort(descending=True)]]
                out.append(list(dict.fromkeys(names))[:self.max_tags])
        return out

    def embeddings(self, images, clip) -> torch.Tensor:
        """[B, max_tags, D]: the CLIP text embedding of each tag (the bare class name), zero rows where none."""
        tags = self.tags(images)
        vocab = sorted({t for ts in tags for t in ts})
        table = dict(zip(vocab, clip.text_features(vocab).float())) if vocab else {}
        out = torch.zeros(len(tags), self.max_tags, clip.embed_dim)
        for i, ts in enumerate(tags):
            for j, t in enumerate(ts):
                out[i, j] = table[t]
        return out
