"""The renderer: shape, determinism, anti-aliasing and that objects show their colour."""
import numpy as np

from workbench.config import WorldConfig
from workbench.sandbox import make_scene, make_split, render_scene, render_scenes
from workbench.sandbox.render import RGB

CFG = WorldConfig.preset("sandbox")


def test_render_shape_and_dtype():
    img = render_scene(make_scene(CFG, "train", 0), CFG)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    batch = render_scenes(make_split(CFG, "train", 3), CFG)
    assert batch.shape == (3, 64, 64, 3)
    assert np.array_equal(batch[0], img)


def test_object_centres_show_their_colour():
    errors = []
    for s in make_split(CFG, "val", 60):
        img = render_scene(s, CFG).astype(float)
        for o in s.objects:
            if o.shape in ("chair", "table", "bed", "boat", "plane", "lamp", "bus", "flower", "cactus") \
                    or o.pattern != "plain":   # centre may be background or pattern for these
                continue
            px = img[int(o.y * 64), int(o.x * 64)]
            errors.append(np.abs(px - np.array(RGB[o.colour])).mean())
    assert np.median(errors) < 40
