"""Feature extraction split across launched processes (see test_data_parallel.py).

    python -m torch.distributed.run --nproc_per_node 2 tests/features_job.py <clip.safetensors> <images.npy> <root>
"""
import sys
from dataclasses import replace

import numpy as np

from workbench.backbones.clip import load_clip
from workbench.config import ClipConfig, FeatureConfig
from workbench.features.cache import extract_image_features

if __name__ == "__main__":
    weights, images, root = sys.argv[1:4]
    clip = load_clip(replace(ClipConfig.preset("tiny"), pretrained=weights), device="cpu")
    images = np.load(images)
    cfg = replace(FeatureConfig.preset("tiny"), root=root)
    store = extract_image_features(clip, images, [f"im{i}" for i in range(len(images))], "split", cfg,
                                   source_id="test", progress=False, split=True)
    assert len(store) == len(images)
