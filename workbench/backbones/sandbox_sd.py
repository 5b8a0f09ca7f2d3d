"""The sandbox text-to-image model: a miniature Stable Diffusion built from diffusers components.

* tokenizer     transformers ``CLIPTokenizer`` written from open_clip's own BPE vocabulary (same ids)
* text_encoder  transformers ``CLIPTextModel`` holding the sandbox CLIP's text tower (converted weights)
* vae           a tiny ``AutoencoderKL`` (64x64x3 <-> 16x16x8), trained here with a CLIP-token perceptual loss
* unet          a small latent ``UNet2DConditionModel`` cross-attending to the text token states, trained here
* scheduler     ``DPMSolverMultistepScheduler`` for sampling (trained with ``DDPMScheduler``)

Packaged as a stock ``StableDiffusionPipeline`` that round-trips through ``save_pretrained`` /
``DiffusionPipeline.from_pretrained``, the same loading path as the paper profile's Stable Diffusion.
Reproduce the committed model (fixed seed; on 2 CPU cores ~10 min VAE + ~26 min UNet + ~20 min decoder):

    workbench train-sd --preset sandbox
    workbench train-sd --preset sandbox --decoder-only    # stage 3 alone, on the saved pipeline
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.checkpoint import Checkpoint
from ..config import DiffusionConfig, resolve
from ..utils.io import atomic_write, atomic_write_json, stable_hash, weights_fingerprint
from ..utils.paths import repo_path


# ----------------------------------------------------------------------------- tokenizer and text encoder
def hf_tokenizer_from_open_clip(context_length: int, out_dir: str | Path):
    """A transformers ``CLIPTokenizer`` with open_clip's BPE vocabulary and merges (identical token ids)."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer
    simple = SimpleTokenizer()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merges = sorted(simple.bpe_ranks.items(), key=lambda kv: kv[1])
    merges_text = "#version: 0.2\n" + "\n".join(f"{a} {b}" for (a, b), _ in merges) + "\n"
    # atomic: processes of a launch write the same files while others may already read them
    atomic_write(out / "vocab.json", lambda tmp: Path(tmp).write_text(json.dumps(simple.encoder, ensure_ascii=False)))
    atomic_write(out / "merges.txt", lambda tmp: Path(tmp).write_text(merges_text, encoding="utf-8"))
    # open_clip pads with id 0 ("!"); keep that so the two tokenizers give identical id sequences.
    sot, eot = (simple.decoder[i] for i in (simple.sot_token_id, simple.eot_token_id))
    return CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), model_max_length=context_length,
                         bos_token=sot, eos_token=eot, unk_token=eot, pad_token="!")


def clip_text_model_from_open_clip(model):
    """Convert an open_clip CLIP's text tower (quick_gelu, causal) into a transformers ``CLIPTextModel``."""
    from transformers import CLIPTextConfig, CLIPTextModel
    blocks = model.transformer.resblocks
    width = model.token_embedding.weight.shape[1]
    cfg = CLIPTextConfig(vocab_size=model.token_embedding.weight.shape[0], hidden_size=width,
                         intermediate_size=blocks[0].mlp.c_fc.out_features, num_hidden_layers=len(blocks),
                         num_attention_heads=blocks[0].attn.num_heads,
                         max_position_embeddings=model.positional_embedding.shape[0], hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, projection_dim=model.text_projection.shape[1],
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=0)
    sd = {"embeddings.token_embedding.weight": model.token_embedding.weight,
          "embeddings.position_embedding.weight": model.positional_embedding,
          "final_layer_norm.weight": model.ln_final.weight, "final_layer_norm.bias": model.ln_final.bias}
    for i, b in enumerate(blocks):
        p = f"encoder.layers.{i}."
        for name, w, bias in zip("qkv", b.attn.in_proj_weight.chunk(3), b.attn.in_proj_bias.chunk(3)):
            sd[p + f"self_attn.{name}_proj.weight"], sd[p + f"self_attn.{name}_proj.bias"] = w, bias
        sd.update({p + "self_attn.out_proj.weight": b.attn.out_proj.weight, p + "self_attn.out_proj.bias": b.attn.out_proj.bias,
                   p + "layer_norm1.weight": b.ln_1.weight, p + "layer_norm1.bias": b.ln_1.bias,
                   p + "layer_norm2.weight": b.ln_2.weight, p + "layer_norm2.bias": b.ln_2.bias,
                   p + "mlp.fc1.weight": b.mlp.c_fc.weight, p + "mlp.fc1.bias": b.mlp.c_fc.bias,
                   p + "mlp.fc2.weight": b.mlp.c_proj.weight, p + "mlp.fc2.bias": b.mlp.c_proj.bias})
    text = CLIPTextModel(cfg)
    text.load_state_dict({k: v.detach().clone().float() for k, v in sd.items()}, strict=True)
    return text.eval()


# ----------------------------------------------------------------------------- components
def build_vae(cfg: DiffusionConfig):
    from diffusers import AutoencoderKL
    n = len(cfg.vae_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=cfg.vae_channels,
                         layers_per_block=1, latent_channels=cfg.vae_latent_channels, norm_num_groups=cfg.norm_groups,
                         sample_size=cfg.image_size)


def build_unet(cfg: DiffusionConfig, cross_attention_dim: int):
    from diffusers import UNet2DConditionModel
    n = len(cfg.unet_channels)
    down = tuple("CrossAttnDownBlock2D" if k in cfg.cross_attention_levels else "DownBlock2D" for k in range(n))
    up = tuple("CrossAttnUpBlock2D" if n - 1 - k in cfg.cross_attention_levels else "UpBlock2D" for k in range(n))
    return UNet2DConditionModel(
        sample_size=cfg.image_size // 2 ** (len(cfg.vae_channels) - 1), in_channels=cfg.vae_latent_channels,
        out_channels=cfg.vae_latent_channels,
        block_out_channels=cfg.unet_channels, layers_per_block=cfg.unet_layers_per_block,
        down_block_types=down, up_block_types=up,
        cross_attention_dim=cross_attention_dim, attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_groups,
        addition_embed_type="text" if cfg.text_time_embedding else None,
        addition_embed_type_num_heads=max(1, cross_attention_dim // 16))


def train_scheduler():
    """Stable Diffusion's training noise schedule."""
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                         beta_end=0.012, prediction_type="epsilon", steps_offset=1, clip_sample=False)


def assemble_pipeline(vae, text_encoder, tokenizer, unet):
    """A stock ``StableDiffusionPipeline`` from the parts (no safety checker: synthetic shapes only)."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    scheduler = DPMSolverMultistepScheduler.from_config(train_scheduler().config)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def build_untrained_pipeline(cfg: DiffusionConfig, clip, tokenizer_dir: str | Path):
    """A pipeline from freshly initialised VAE and UNet around ``clip``'s text tower (tests, smoke runs)."""
    torch.manual_seed(cfg.seed)
    text_encoder = clip_text_model_from_open_clip(clip.model)
    tokenizer = hf_tokenizer_from_open_clip(clip.model.context_length, tokenizer_dir)
    return assemble_pipeline(build_vae(cfg).eval(), text_encoder, tokenizer,
                             build_unet(cfg, text_encoder.config.hidden_size).eval())


def _to_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [-1, 1] (the VAE's input range)."""
    return images_uint8.permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ----------------------------------------------------------------------------- training
VAE_FIELDS = ("image_size", "vae_channels", "norm_groups", "vae_steps", "vae_batch", "vae_lr", "vae_kl_weight",
              "vae_latent_channels", "vae_perceptual_weight", "warmup_steps", "checkpoint_every", "seed", "world")
DECODER_FIELDS = ("decoder_steps", "decoder_batch", "decoder_lr", "decoder_renders", "decoder_sketches")


def stage_key(cfg: DiffusionConfig, name: str, source: str = "") -> str:
    """Checkpoint key of a stage: the VAE depends only on its own fields, the UNet on everything but the decoder
    stage's, the decoder stage on the VAE's and its own (and on ``source``: the weights it starts from)."""
    d = asdict(cfg)
    if name == "vae":
        return stable_hash({k: d[k] for k in VAE_FIELDS})
    if name == "decoder":
        return stable_hash({**{k: d[k] for k in VAE_FIELDS + DECODER_FIELDS}, "source": source})
    return stable_hash({k: v for k, v in d.items() if k not in DECODER_FIELDS})


def _checkpointed_loop(name, cfg, steps, run_dir, modules, opt, step_fn, progress, key: str = "") -> list:
    """Resumable loop: ``step_fn(step) -> loss``; warm-up + cosine learning rate set from the step number;
    checkpoints ``modules`` + ``opt`` atomically every ``cfg.checkpoint_every`` steps."""
    from tqdm.auto import tqdm
    ckpt = Checkpoint(run_dir / f"{name}.pt", key or stage_key(cfg, name))
    start, losses = 0, []
    state = ckpt.load()
    if state is not None:
        for m, s in zip(modules, state["modules"]):
            m.load_state_dict(s)
        opt.load_state_dict(state["opt"])
        start, losses = state["step"], state["losses"]
    bar = tqdm(range(start, steps), desc=f"train {name}", initial=start, total=steps, disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * _lr_factor(cfg, step, steps)
        loss = step_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for m in modules for p in m.parameters()], 1.0)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == steps:
            ckpt.save(modules=[m.state_dict() for m in modules], opt=opt.state_dict(), step=step + 1, losses=losses)
    return losses


def _lr_factor(cfg: DiffusionConfig, step: int, steps: int) -> float:
    return min(1.0, (step + 1) / cfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps)))


def _adamw(params, lr: float, weight_decay: float = 0.0):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    for group in opt.param_groups:
        group["initial_lr"] = lr
    return opt


def decoder_training_images(cfg: DiffusionConfig, data) -> torch.Tensor:
    """uint8 [R + S, H, W, 3]: the first ``decoder_renders`` training renders and the flat layout sketches
    (``sandbox.layout``, parsed from the caption text alone) of the first caption of the first
    ``decoder_sketches`` training scenes, the two kinds of image the layout-guided synthesis decodes."""
    from ..sandbox.layout import sketch_caption
    n_r, n_s = min(cfg.decoder_renders, len(data.images)), min(cfg.decoder_sketches, len(data.captions))
    sketches = [sketch_caption(data.captions[i][0], i, size=cfg.image_size) for i in range(n_s)]
    parts = [torch.from_numpy(np.ascontiguousarray(data.images[:n_r]))]
    if sketches:
        parts.append(torch.from_numpy(np.stack(sketches)))
    return torch.cat(parts)


def finetune_decoder(vae, cfg: DiffusionConfig, images: torch.Tensor, run_dir: Path, progress: bool = True,
                     source: str = "") -> list:
    """Stage 3: fine-tune ``vae.decoder`` + ``post_quant_conv`` alone (pixel MSE between ``images`` (uint8
    [N, H, W, 3]) and their reconstructions from the frozen encoder's posterior means), in place; resumable.
    The encoder, the scaling factor and hence the latent space the UNet was trained on do not change."""
    vae.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = _adamw(params, cfg.decoder_lr)

    module = torch.nn.ModuleDict({"decoder": vae.decoder, "post_quant_conv": vae.post_quant_conv})  # checkpointed

    def decoder_step(step):
        g = torch.Generator().manual_seed(cfg.seed * 15_485_863 + step)
        x = _to_unit(images[torch.randint(0, len(images), (cfg.decoder_batch,), generator=g)])
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
        return F.mse_loss(vae.decode(z).sample, x)
    losses = _checkpointed_loop("decoder", cfg, cfg.decoder_steps, Path(run_dir), [module], opt, decoder_step,
                                progress, key=stage_key(cfg, "decoder", source))
    vae.eval().requires_grad_(False)
    return losses


def train_sandbox_pipeline(cfg: DiffusionConfig, clip, progress: bool = True):
    """Train VAE, UNet, then the VAE's decoder alone on sandbox train renders + captions (+ sketches of them);
    returns the assembled pipeline and a log."""
    from ..sandbox.splits import load_sandbox_split
    torch.manual_seed(cfg.seed)
    run_dir = repo_path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = load_sandbox_split(cfg.world, "train", progress=progress)
    images = torch.from_numpy(data.images)                                  # uint8 [N, H, W, 3]
    tokenizer = hf_tokenizer_from_open_clip(clip.model.context_length, run_dir / "tokenizer")
    text_encoder = clip_text_model_from_open_clip(clip.model)
    log = {}

    # --- stage 1: the autoencoder (reconstruction + CLIP-token perceptual term + a small KL term)
    vae = build_vae(cfg)
    opt = _adamw(vae.parameters(), cfg.vae_lr)
    clip.model.requires_grad_(False)

    def clip_tokens(x):                                                     # [-1, 1] images -> [B, N, W]
        if x.shape[-1] != clip.image_size:
            x = F.interpolate(x, size=(clip.image_size, clip.image_size), mode="bilinear", antialias=True)
        return clip.encode_images(((x + 1) / 2 - clip.mean) / clip.std).tokens

    def vae_step(step):
        g = torch.Generator().manual_seed(cfg.seed * 7_919 + step)
        x = _to_unit(images[torch.randint(0, len(images), (cfg.vae_batch,), generator=g)])
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample(generator=g)).sample
        loss = F.mse_loss(rec, x) + cfg.vae_kl_weight * post.kl().mean()
        if cfg.vae_perceptual_weight > 0:
            with torch.no_grad():
                target = clip_tokens(x)
            loss = loss + cfg.vae_perceptual_weight * F.mse_loss(clip_tokens(rec), target)
        return loss
    # a stage's run is its config *and* its data and CLIP: another world or CLIP is another run, never resumed
    data_id = stable_hash({"captions": stable_hash(data.captions), "clip": weights_fingerprint(clip.model),
                           "pixels": data.pixels_digest()})
    log["vae_losses"] = _checkpointed_loop("vae", cfg, cfg.vae_steps, run_dir, [vae], opt, vae_step, progress,
                                           key=stable_hash({"stage": stage_key(cfg, "vae"), "data": data_id}))
    vae.eval().requires_grad_(False)

    # --- latents of every training image (posterior means), and the scaling factor
    with torch.no_grad():
        latents = torch.cat([vae.encode(_to_unit(images[i:i + 256])).latent_dist.mean
                             for i in range(0, len(images), 256)])               # [N, C, h, w]
    scale = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scale)
    latents = latents * scale
    log["scaling_factor"] = scale

    # --- caption token states, computed once (the text encoder stays frozen, as in Stable Diffusion)
    captions = [c for caps in data.captions for c in caps]                     # 5 per scene, scene-major
    with torch.no_grad():
        ids = tokenizer(captions + [""], padding="max_length", truncation=True, return_tensors="pt").input_ids
        states = torch.cat([text_encoder(ids[i:i + 1024]).last_hidden_state.half()
                            for i in range(0, len(ids), 1024)])                  # [5N + 1, L, W]
    empty = len(captions)

    # --- stage 2: the latent UNet (epsilon prediction, 10% caption dropout for classifier-free guidance)
    unet = build_unet(cfg, text_encoder.config.hidden_size)
    noise_sched = train_scheduler()
    opt = _adamw(unet.parameters(), cfg.unet_lr, weight_decay=0.01)

    def unet_step(step):
        g = torch.Generator().manual_seed(cfg.seed * 104_729 + step)
        idx = torch.randint(0, len(latents), (cfg.unet_batch,), generator=g)
        cap = idx * 5 + torch.randint(0, 5, idx.shape, generator=g)
        cap = torch.where(torch.rand(idx.shape, generator=g) < cfg.cond_dropout, torch.full_like(cap, empty), cap)
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, idx.shape, generator=g)
        pred = unet(noise_sched.add_noise(x0, noise, t), t, encoder_hidden_states=states[cap].float()).sample
        return F.mse_loss(pred, noise)
    log["unet_losses"] = _checkpointed_loop("unet", cfg, cfg.unet_steps, run_dir, [unet], opt, unet_step, progress,
                                            key=stable_hash({"stage": stage_key(cfg, "unet"), "data": data_id}))
    unet.eval()

    # --- stage 3: the decoder alone, on renders and layout sketches (the UNet's latent space is unchanged)
    if cfg.decoder_steps:
        log["decoder_losses"] = finetune_decoder(vae, cfg, decoder_training_images(cfg, data), run_dir, progress)
    return assemble_pipeline(vae, text_encoder, tokenizer, unet), log


def _swap_in(tmp: Path, out: Path) -> None:
    """Make the finished folder ``tmp`` the model folder ``out`` (the old one moves aside, then goes), after
    dropping the machine-specific ``_name_or_path`` that diffusers writes for a model it loaded from disk."""
    import shutil
    for config in [tmp / "model_index.json", *tmp.glob("*/config.json")]:
        d = json.loads(config.read_text()) if config.exists() else {}
        if d.pop("_name_or_path", None) is not None:
            atomic_write_json(config, d)
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def save_pipeline(pipe, out_dir: str | Path, manifest: dict) -> Path:
    """``save_pretrained`` in fp16 safetensors to a temp folder, then swap it in (no half-written model)."""
    import shutil
    out = repo_path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    pipe.to(torch.float32)
    atomic_write_json(tmp / "workbench_manifest.json", manifest)
    _swap_in(tmp, out)
    return out


def finetune_saved_decoder(cfg: DiffusionConfig, model_dir: str | Path | None = None, progress: bool = True,
                           reproduce: str | None = None) -> dict:
    """Stage 3 alone on a saved sandbox pipeline (``model_dir``, default ``cfg.out_dir``): fine-tune its
    decoder and save it back in place, the manifest extended with a ``decoder_finetune`` record (``reproduce``:
    the command that did it). Refuses a pipeline whose decoder was already fine-tuned (stages do not compound)."""
    from diffusers import StableDiffusionPipeline
    from ..sandbox.splits import load_sandbox_split
    from ..utils.io import sha256_file
    src = repo_path(model_dir or cfg.out_dir)
    manifest_file = src / "workbench_manifest.json"
    if not manifest_file.exists():
        raise FileNotFoundError(f"model_dir={str(src)!r} holds no workbench_manifest.json: give a folder written by "
                                f"`workbench train-sd` (save_pipeline).")
    manifest = json.loads(manifest_file.read_text())
    if "decoder_finetune" in manifest:
        raise ValueError(f"model_dir={str(src)!r}: its decoder was already fine-tuned "
                         f"({manifest['decoder_finetune']['steps']} steps); fine-tune the pipeline it came from "
                         f"instead, or train afresh with `workbench train-sd`.")
    t0 = time.time()
    source = sha256_file(src / "vae" / "diffusion_pytorch_model.safetensors")
    pipe = StableDiffusionPipeline.from_pretrained(src, dtype=torch.float32, safety_checker=None)
    data = load_sandbox_split(cfg.world, "train", progress=progress)
    run_dir = repo_path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    losses = finetune_decoder(pipe.vae, cfg, decoder_training_images(cfg, data), run_dir, progress, source=source)
    manifest["decoder_finetune"] = {
        **{k: getattr(cfg, k) for k in DECODER_FIELDS}, "steps": cfg.decoder_steps, "source_vae_sha256": source,
        "mse_first_last": [float(np.mean(losses[:50])), float(np.mean(losses[-50:]))],
        "seconds": round(time.time() - t0, 1),
        "reproduce": reproduce}
    _replace_vae(src, pipe.vae, manifest)
    return manifest["decoder_finetune"]


def _replace_vae(src: Path, vae, manifest: dict) -> None:
    """Swap the folder's ``vae/`` (fp16 safetensors, as ``save_pipeline`` writes) and manifest in through a
    full copy (``_swap_in``); every other component's files stay byte for byte as they were."""
    import shutil
    tmp = src.with_name(src.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(tmp / "vae")
    vae.to(torch.float16).save_pretrained(tmp / "vae", safe_serialization=True)
    vae.to(torch.float32)
    atomic_write_json(tmp / "workbench_manifest.json", manifest)
    _swap_in(tmp, src)


def main(argv=None) -> None:
    from .clip import load_clip
    ap = argparse.ArgumentParser(description="Train the sandbox text-to-image model (mini Stable Diffusion).")
    ap.add_argument("--preset", default="sandbox", choices=["tiny", "sandbox"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--clip", default=None, help="CLIP weights whose text tower conditions the UNet and whose patch "
                                                 "tokens drive the VAE's perceptual loss (default: the sandbox CLIP)")
    ap.add_argument("--decoder-only", action="store_true",
                    help="stage 3 alone: fine-tune the decoder of the pipeline saved in the preset's out_dir, in place")
    args = ap.parse_args(argv)
    stages = resolve(args.preset)
    cfg = stages.diffusion
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.decoder_only:
        print(json.dumps(finetune_saved_decoder(
            cfg, reproduce=f"workbench train-sd --preset {args.preset} --decoder-only"), indent=2))
        return
    t0 = time.time()
    clip_cfg = stages.clip
    if args.clip:
        clip_cfg = replace(clip_cfg, pretrained=args.clip)
    clip = load_clip(clip_cfg, device="cpu")
    pipe, log = train_sandbox_pipeline(cfg, clip)
    from ..utils.io import sha256_file
    clip_file = repo_path(clip_cfg.pretrained) if clip_cfg.pretrained else None
    manifest = {"config": asdict(cfg), "seconds": round(time.time() - t0, 1), "scaling_factor": log["scaling_factor"],
                "vae_final_loss": float(np.mean(log["vae_losses"][-50:])),
                "unet_final_loss": float(np.mean(log["unet_losses"][-50:])),
                "decoder_final_loss": float(np.mean(log["decoder_losses"][-50:])) if cfg.decoder_steps else None,
                "clip_sha256": sha256_file(clip_file) if clip_file else None,
                "reproduce": f"workbench train-sd --preset {args.preset}"
                             + (f" --clip {args.clip}" if args.clip else "")}
    out = save_pipeline(pipe, cfg.out_dir, manifest)
    print(json.dumps(manifest, indent=2, default=str))
    print(f"saved {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
