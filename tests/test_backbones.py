"""The backbone registry: feature shapes, the head-mapped patches, pooling, the paper loading path."""
import numpy as np
import pytest
import torch

from workbench.backbones.clip import WeightsUnavailableError, load_clip, save_clip_weights
from workbench.config import ClipConfig
from workbench.utils.device import resolve_device


def _images(n, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_feature_shapes(tiny_clip):
    px = tiny_clip.pixels_from_uint8(_images(3))
    with torch.no_grad():
        f = tiny_clip.encode_images(px)
        t = tiny_clip.encode_texts(["a red circle", "two blue squares"])
    grid, width, dim = tiny_clip.grid, tiny_clip.model.visual.transformer.width, tiny_clip.embed_dim
    assert f.global_.shape == (3, dim)
    assert f.tokens.shape == (3, grid * grid, width)
    assert f.patches.shape == (3, grid * grid, dim)
    assert t.shape == (2, dim)


def test_global_and_patches_match_open_clip(tiny_clip):
    px = tiny_clip.pixels_from_uint8(_images(2))
    with torch.no_grad():
        f = tiny_clip.encode_images(px)
        ref = tiny_clip.model.encode_image(px)
        # DenseCLIP trick: the head (ln_post + proj) applied to each patch token
        v = tiny_clip.model.visual
        x = v.ln_post(v.transformer(v._embeds(px)))[:, 1:] @ v.proj   # _embeds includes ln_pre
    assert torch.allclose(f.global_, ref, atol=1e-5)
    assert torch.allclose(f.patches, x, atol=1e-5)
    assert tiny_clip.model.visual.output_tokens is False, "the output_tokens toggle must be restored"


def test_pool_grid_averages_patches(tiny_clip):
    pooled = load_clip(ClipConfig.preset("tiny", pool_grid=2), device="cpu")
    pooled.model.load_state_dict(tiny_clip.model.state_dict())
    px = tiny_clip.pixels_from_uint8(_images(1))
    with torch.no_grad():
        full, small = tiny_clip.encode_images(px), pooled.encode_images(px)
    g = tiny_clip.grid
    grid = full.patches[0].reshape(g, g, -1)
    assert small.patches.shape[1] == 4
    assert torch.allclose(small.patches[0, 0], grid[: g // 2, : g // 2].mean((0, 1)), atol=1e-5)


def test_uint8_and_pil_inputs_agree(tiny_clip):
    from PIL import Image
    imgs = _images(2, size=32)
    a = tiny_clip.image_features(imgs).global_
    b = tiny_clip.image_features([Image.fromarray(x) for x in imgs]).global_
    assert torch.allclose(a, b, atol=1e-3)


def test_paper_loading_path_roundtrip(tmp_path, tiny_clip):
    """Save a tiny checkpoint, load it back through create_model_and_transforms(pretrained=<file>)."""
    path = save_clip_weights(tiny_clip, tmp_path / "tiny.safetensors", half=False)
    loaded = load_clip(ClipConfig(model_name="wb-tiny-vit", pretrained=str(path)), device="cpu")
    px = tiny_clip.pixels_from_uint8(_images(2))
    with torch.no_grad():
        assert torch.equal(loaded.encode_images(px).global_, tiny_clip.encode_images(px).global_)
        assert torch.equal(loaded.encode_texts(["a star"]), tiny_clip.encode_texts(["a star"]))


def test_missing_local_weights_say_how_to_fix(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="wb-tiny-vit.*not a file"):
        load_clip(ClipConfig(model_name="wb-tiny-vit", pretrained=str(tmp_path / "nope.safetensors")))


def test_missing_hub_weights_offline_name_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))       # an empty cache: nothing to find offline
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        load_clip(ClipConfig(model_name="wb-tiny-vit", pretrained="openai"))
    msg = str(err.value)
    assert "wb-tiny-vit" in msg and "WORKBENCH_CLIP_CHECKPOINT" in msg and "connected machine" in msg


def test_paper_presets_name_real_models(monkeypatch):
    monkeypatch.delenv("WORKBENCH_CLIP_CHECKPOINT", raising=False)
    assert ClipConfig.preset("paper_b32").model_name == "ViT-B-32"
    assert ClipConfig.preset("paper_b32").pretrained == "openai"
    assert ClipConfig.preset("paper_l14").pool_grid == 8
    monkeypatch.setenv("WORKBENCH_CLIP_CHECKPOINT", "/ckpt/ViT-B-32.bin")
    assert ClipConfig.preset("paper_b32").pretrained == "/ckpt/ViT-B-32.bin"


def test_unknown_model_and_bad_images(tiny_clip):
    with pytest.raises(ValueError, match="model_name='ViT-Nope'"):
        load_clip(ClipConfig(model_name="ViT-Nope", pretrained=None))
    with pytest.raises(ValueError, match="uint8"):
        tiny_clip.pixels_from_uint8(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(TypeError, match="list of strings"):
        tiny_clip.tokenize("a red circle")


def test_device_resolver():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device='tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
