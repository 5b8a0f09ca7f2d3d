"""The sandbox text-to-image parts: tokenizer and text-tower conversion, and the diffusers round trip."""
import numpy as np
import pytest
import torch

from workbench.config import SynthesisConfig
from workbench.backbones.sandbox_sd import clip_text_model_from_open_clip, hf_tokenizer_from_open_clip
from workbench.synthesis.engine import SynthesisEngine, load_pipeline

TEXTS = ["a red circle", "", "two little violet rhombuses to the left of a pair of big yellow crescents on a "
         "checkerboard background, and a tiny white star next to them"]


def test_hf_tokenizer_matches_open_clip(tmp_path, tiny_clip):
    hf = hf_tokenizer_from_open_clip(tiny_clip.model.context_length, tmp_path)
    ids = hf(TEXTS, padding="max_length", truncation=True, return_tensors="pt").input_ids
    assert torch.equal(ids, tiny_clip.tokenize(TEXTS).cpu())


def test_text_model_conversion_is_exact(tmp_path, tiny_clip):
    text = clip_text_model_from_open_clip(tiny_clip.model)
    ids = tiny_clip.tokenize(TEXTS)
    m = tiny_clip.model
    with torch.no_grad():
        states = text(ids).last_hidden_state                                   # [B, L, W]
        x = m.token_embedding(ids) + m.positional_embedding
        ref = m.ln_final(m.transformer(x, attn_mask=m.attn_mask))
        pooled = text(ids).pooler_output @ m.text_projection
    assert torch.allclose(states, ref, atol=1e-5)
    assert torch.allclose(pooled, m.encode_text(ids), atol=1e-5)


def test_pipeline_roundtrip_through_from_pretrained(tiny_pipeline_dir):
    cfg = SynthesisConfig.preset("tiny", model_id=str(tiny_pipeline_dir), out_dir="unused")
    pipe = load_pipeline(cfg, device="cpu")
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    engine = SynthesisEngine(pipe, cfg)
    a = engine.generate(["a red circle", "a blue star"], [1, 2])
    b = engine.generate(["a blue star"], [2])
    assert a.shape == (2, 64, 64, 3) and a.dtype == np.uint8
    assert np.abs(a[1].astype(int) - b[0].astype(int)).max() <= 1      # the same seed gives the same image


def test_missing_model_error_names_it(tmp_path):
    cfg = SynthesisConfig.preset("tiny", model_id="some-org/not-cached-model", out_dir=str(tmp_path))
    with pytest.raises(OSError, match=r"(?s)model_id=.some-org/not-cached-model.*connected machine"):
        load_pipeline(cfg, device="cpu")


def test_decoder_stage_changes_the_decoder_alone(tmp_path, tiny_pipeline_dir):
    """Stage 3 (``--decoder-only``) on a saved pipeline: the decoder moves, the encoder and the UNet (hence
    the latent space) do not, the manifest records it, and a second fine-tune is refused."""
    import json
    import shutil
    from dataclasses import replace

    from diffusers import StableDiffusionPipeline

    from workbench.config import DiffusionConfig
    from workbench.backbones.sandbox_sd import finetune_saved_decoder
    src = tmp_path / "pipe"
    shutil.copytree(tiny_pipeline_dir, src)
    before = StableDiffusionPipeline.from_pretrained(src, dtype=torch.float32, safety_checker=None)
    cfg = replace(DiffusionConfig.preset("tiny"), decoder_steps=3, decoder_lr=1e-2, run_dir=str(tmp_path / "run"))
    record = finetune_saved_decoder(cfg, src, progress=False)
    after = StableDiffusionPipeline.from_pretrained(src, dtype=torch.float32, safety_checker=None)
    moved = lambda a, b: any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert moved(before.vae.decoder, after.vae.decoder)
    assert not moved(before.vae.encoder, after.vae.encoder)
    assert not moved(before.vae.quant_conv, after.vae.quant_conv)
    assert not moved(before.unet, after.unet)
    assert after.vae.config.scaling_factor == before.vae.config.scaling_factor
    manifest = json.loads((src / "workbench_manifest.json").read_text())
    assert manifest["decoder_finetune"]["steps"] == 3 == record["steps"] and manifest["note"] == "untrained, for tests"
    assert (tmp_path / "run" / "decoder.pt").is_file()
    for part in ("unet/diffusion_pytorch_model.safetensors", "unet/config.json", "model_index.json"):
        assert (src / part).read_bytes() == (tiny_pipeline_dir / part).read_bytes(), part
    assert "_name_or_path" not in json.loads((src / "vae" / "config.json").read_text())
    with pytest.raises(ValueError, match="already fine-tuned"):
        finetune_saved_decoder(cfg, src, progress=False)
    with pytest.raises(FileNotFoundError, match="model_dir="):
        finetune_saved_decoder(cfg, tmp_path / "nowhere", progress=False)


def test_decoder_stage_config_is_checked():
    from workbench.config import DiffusionConfig
    with pytest.raises(ValueError, match="decoder_renders"):
        DiffusionConfig(decoder_renders=0, decoder_sketches=0)
    with pytest.raises(ValueError, match="decoder_steps"):
        DiffusionConfig(decoder_steps=-1)
    assert DiffusionConfig(decoder_steps=0, decoder_renders=0, decoder_sketches=0).decoder_steps == 0


def test_a_stage_run_on_other_data_is_not_resumed(tmp_path, tiny_clip, monkeypatch, other_captions):
    """VAE and UNet checkpoints are keyed on the world's renders and captions (and the CLIP): after the captions
    change, the same config trains afresh instead of reloading the finished run of the old world."""
    from dataclasses import replace

    import workbench.sandbox.splits as D
    from workbench.config import DiffusionConfig
    from workbench.backbones.sandbox_sd import train_sandbox_pipeline
    cfg = replace(DiffusionConfig.preset("tiny"), run_dir=str(tmp_path / "run"), out_dir=str(tmp_path / "out"))
    _, first = train_sandbox_pipeline(cfg, tiny_clip, progress=False)
    _, same = train_sandbox_pipeline(cfg, tiny_clip, progress=False)                 # finished: reloaded
    assert same["unet_losses"] == first["unet_losses"]
    monkeypatch.setattr(D, "load_sandbox_split", other_captions(D.load_sandbox_split))
    _, other = train_sandbox_pipeline(cfg, tiny_clip, progress=False)
    assert len(other["unet_losses"]) == cfg.unet_steps and other["unet_losses"] != first["unet_losses"]
