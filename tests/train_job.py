"""A tiny captioner training job on synthetic cached features, run as a subprocess by test_captioner.py.

    python tests/train_job.py <out_dir> <steps_epochs>
"""
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from workbench.model.captioner import Captioner
from workbench.config import CaptionerConfig, PCMConfig, TrainConfig
from workbench.training import CaptionSet, EvalSet, train_captioner
from workbench.model.vocab import Vocabulary


class ArrayStore:
    """The FeatureStore read interface over in-memory arrays."""
    def __init__(self, arrays):
        self.arrays = arrays
        self.ids = [str(i) for i in range(len(arrays["global"]))]

    def __len__(self):
        return len(self.ids)

    def get(self, idx, keys=None):
        idx = list(idx)
        return {k: self.arrays[k][idx] for k in (keys or self.arrays)}


def build(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = 48
    colours, shapes = ["red", "blue", "green"], ["circle", "star", "heart", "square"]
    caps = [f"a {colours[i % 3]} {shapes[i % 4]}" for i in range(n)]
    store = ArrayStore({"global": torch.randn(n, 16, generator=g), "tokens": torch.randn(n, 16, 12, generator=g),
                        "patches": torch.randn(n, 16, 16, generator=g)})
    vocab = Vocabulary.build(caps, min_count=1)
    train = CaptionSet(store, list(range(n)), caps, cos=torch.rand(n, generator=g))
    val = EvalSet(store.arrays["global"][:8], store.arrays["tokens"][:8], store.arrays["patches"][:8],
                  [[c] for c in caps[:8]], store.ids[:8])
    torch.manual_seed(seed)
    model = Captioner(CaptionerConfig.preset("tiny"), len(vocab), 16, 12, 16, PCMConfig.preset("tiny"),
                      torch.randn(6, 16, generator=g))
    return model, vocab, train, val


if __name__ == "__main__":
    out, epochs = sys.argv[1], int(sys.argv[2])
    model, vocab, train, val = build()
    cfg = replace(TrainConfig.preset("tiny"), epochs=epochs, batch_size=4, checkpoint_every=2, run_dir=out)
    hist = train_captioner(model, vocab, train, val, cfg, "job", progress=False)
    Path(out, "losses.json").write_text(json.dumps(hist["loss"]))
    print("done", len(hist["loss"]), np.mean(hist["loss"][-5:]))
