"""Dataset loaders: sandbox split cache and the real reference formats (Karpathy lists, COCO json)."""
from pathlib import Path

import numpy as np
import pytest

from workbench.corpora.readers import load_captions, load_real_pairs
from workbench.sandbox.splits import load_sandbox_split

FIX = Path(__file__).parent / "fixtures"


def test_sandbox_split_is_cached_and_consistent(tiny_world):
    a = load_sandbox_split(tiny_world, "val", progress=False)
    b = load_sandbox_split(tiny_world, "val", progress=False)       # from the cache
    assert a.images.shape == (16, 64, 64, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images)
    assert all(len(c) == 5 for c in a.captions)
    single = load_sandbox_split(tiny_world, "test", n=5, n_objects=1, progress=False)
    assert all(s.n_objects == 1 for s in single.scenes)


def test_karpathy_reader():
    items = load_captions(FIX / "karpathy_mscoco_val_sample.json")
    assert len(items) == 5
    assert all(isinstance(it.image_id, int) and len(it.captions) >= 5 for it in items)
    assert items[0].file_name.startswith("COCO_val2014_")


def test_coco_annotation_reader():
    items = load_captions(FIX / "coco_captions_sample.json")
    assert len(items) == 2
    assert all(len(it.captions) >= 5 for it in items)


def test_real_pairs_find_images_by_coco_id():
    pairs = load_real_pairs(FIX / "coco_images", FIX / "karpathy_mscoco_val_sample.json")
    assert len(pairs) == 3                                           # 2 of the 5 items have no image here
    from PIL import Image
    for path, caps in pairs:
        assert Image.open(path).size[0] > 100 and len(caps) >= 5


def test_reader_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"foo": 1}')
    with pytest.raises(ValueError, match="neither a Karpathy list"):
        load_captions(bad)
    with pytest.raises(FileNotFoundError, match="image_dir="):
        load_real_pairs(tmp_path / "missing", FIX / "karpathy_mscoco_val_sample.json")


def test_real_images_through_a_clip(tiny_clip):
    pairs = load_real_pairs(FIX / "coco_images", FIX / "coco_captions_sample.json")
    f = tiny_clip.image_features([p for p, _ in pairs])
    assert f.global_.shape == (len(pairs), tiny_clip.embed_dim)
