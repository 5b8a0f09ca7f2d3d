"""The committed sandbox CLIP: loads from data/, and clears the zero-shot floors on held-out scenes.

The zero-shot floors are checked on the 500-scene acceptance set, the gap targets on 300 val pairs.
"""
import json

import pytest

from workbench.config import WorldConfig
from workbench.utils.paths import data_dir
from workbench.utils.io import sha256_file
from workbench.backbones.zeroshot import sandbox_report


def test_weights_match_their_manifest_and_budget():
    weights = data_dir() / "sandbox_clip.safetensors"
    manifest = json.loads(weights.with_suffix(".json").read_text())
    assert manifest["sha256"] == sha256_file(weights)
    total = sum(p.stat().st_size for p in data_dir().rglob("*.safetensors"))
    assert total <= 25 * 1024 ** 2, f"sandbox weights take {total / 1e6:.1f} MB, over the 25 MB budget"


def test_zero_shot_floors(sandbox_clip):
    """On the acceptance set itself (500 single-object test scenes, each with its 2-4 props): the committed world-v7
    CLIP names a thing's colour 0.83 (chance 1/8) and its category 0.47 (chance 1/16; v3's CLIP 0.70, real ViT-B/32
    0.63 on ImageNet's 1,000). Issue 23's floors (0.95 / 0.90, set on the shapes world) are NOT met by this CLIP
    (open there); this guards what it does reach, far above chance, with room for a retrain's spread."""
    from workbench.sandbox.world import COLOURS, SHAPES
    r = sandbox_report(sandbox_clip, WorldConfig.preset("sandbox"), n_single=500, n_multi=200)
    single = r["single_object_test"]
    assert single["n"] == 500
    assert single["colour_acc"] >= max(0.70, 5 / len(COLOURS)), r
    assert single["shape_acc"] >= max(0.40, 5 / len(SHAPES)), r
    assert r["multi_object_caption_vs_other"]["win_rate"] >= 0.90, r


def test_features_are_well_formed(sandbox_clip):
    from workbench.sandbox.splits import load_sandbox_split
    split = load_sandbox_split(WorldConfig.preset("sandbox"), "val", n=4, progress=False)
    f = sandbox_clip.image_features(split.images)
    assert f.global_.shape == (4, 128) and f.tokens.shape == (4, 64, 96) and f.patches.shape == (4, 64, 128)


def test_modality_gap_is_calibrated_to_real_clip(sandbox_clip):
    """Issue 10's targets on 300 held-out val pairs (the manifest records them on 1,000)."""
    from workbench.sandbox.splits import load_sandbox_split
    from workbench.backbones.gap import encode_pairs, gap_summary
    pairs = load_sandbox_split(WorldConfig.preset("sandbox"), "val", n=300, progress=False)
    f = encode_pairs(sandbox_clip, pairs.images, pairs.first_captions(), progress=False)
    g = gap_summary(f["img"], f["txt"])
    assert 0.20 <= g["paired_cos"] <= 0.45, g
    assert g["centroid_distance"] >= 0.6, g
    assert g["separability"] >= 0.99, g
    manifest = json.loads((data_dir() / "sandbox_clip.json").read_text())
    assert abs(manifest["gap_val"]["paired_cos"] - g["paired_cos"]) < 0.05       # the manifest describes these weights


def test_sandbox_noise_keeps_capdecs_expected_cosine_and_exceeds_the_gap_like_capdecs():
    """The carried noise keeps CapDec's clean-noisy cosine (0.33); like CapDec's on ViT-B/32 it is several times
    the modality gap it stands in for (noise-to-gap ratio within a factor 2 of ViT-B/32's)."""
    from workbench.config import CaptionerConfig
    from workbench.config import carryover as R
    from workbench.backbones.gap import REAL_CLIP
    manifest = json.loads((data_dir() / "sandbox_clip.json").read_text())
    v = R.noise_variance(R.sandbox_backbone())                  # carried, before the val selection
    assert abs(R.expected_noise_cosine(v, 128) - R.expected_noise_cosine(0.016, 512)) < 1e-9
    assert CaptionerConfig.preset("sandbox").noise_variance == pytest.approx(v * R.noise_multiple())
    sandbox_ratio = R.noise_to_gap(v, 128, manifest["gap_val"]["paired_cos"])
    real_ratio = R.noise_to_gap(0.016, 512, REAL_CLIP["paired_cos_b32_mscoco"])
    assert 0.5 < sandbox_ratio / real_ratio < 2.0, (sandbox_ratio, real_ratio)
    ref = manifest["gap_real_clip_reference"]          # a real gap: unit vectors at paired cos 0.33
    assert abs(ref["sigma_per_dim"] ** 2 * 512 - (2 - 2 * ref["paired_cos_b32_mscoco"])) < 1e-6
