"""Backbone registry: load a CLIP through open_clip (sandbox or paper) and expose its features.

The sandbox CLIP is an open_clip model built from ``workbench/model_configs/wb-sandbox-vit.json`` (registered
with open_clip on import) and loaded from ``data/sandbox_clip.safetensors``; the paper presets load
``ViT-B-32`` / ``ViT-L-14`` with ``pretrained="openai"``. Both go through the same call,
``open_clip.create_model_and_transforms``.

    clip = load_clip(Profile("sandbox").clip)
    px = clip.pixels_from_uint8(images)            # uint8 [B, H, W, 3] -> float [B, 3, S, S]
    f = clip.encode_images(px)                     # f.global_ [B, D], f.tokens [B, N, W], f.patches [B, N, D]
    t = clip.encode_texts(["a red circle"])        # [B, D]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ClipConfig
from ..utils.device import resolve_device
from ..utils.paths import repo_path

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
open_clip.add_model_config(CONFIG_DIR)   # registers wb-sandbox-vit and wb-tiny-vit with open_clip


class WeightsUnavailableError(RuntimeError):
    """Raised when a CLIP's weights cannot be found locally and cannot be downloaded."""


@dataclass
class ImageFeatures:
    global_: torch.Tensor   # [B, D]    projected global embedding (not normalised)
    tokens: torch.Tensor    # [B, N, W] patch tokens after ln_post, class token removed
    patches: torch.Tensor   # [B, N, D] patch tokens mapped through the CLIP head (ln_post + proj)

    def to(self, device) -> "ImageFeatures":
        return ImageFeatures(self.global_.to(device), self.tokens.to(device), self.patches.to(device))


def _resolve_pretrained(cfg: ClipConfig) -> Optional[str]:
    p = cfg.pretrained
    if p is None:
        return None
    looks_like_path = p.endswith(WEIGHT_SUFFIXES) or os.sep in p or p.startswith(".")
    if not looks_like_path:
        return p                                   # an open_clip tag such as "openai"
    path = repo_path(p)
    if not path.is_file():
        fix = ("reproduce it with `workbench pretrain-clip --preset sandbox`"
               if cfg.model_name == "wb-sandbox-vit" else
               "check the path, or set WORKBENCH_CLIP_CHECKPOINT to the checkpoint file")
        raise WeightsUnavailableError(
            f"pretrained={p!r} for model {cfg.model_name!r} is not a file (looked at {path}); {fix}.")
    problem = checkpoint_architecture(path, cfg.model_name)
    if problem:
        raise WeightsUnavailableError(f"{problem}; point pretrained (--clip-pretrained) at a {cfg.model_name} "
                                      f"checkpoint, or pick the model that matches it.")
    return str(path)


def _tensor_shapes(path: Path) -> Optional[dict]:
    """``{name: shape}`` of a local state-dict file (safetensors, or a torch pickle with or without a
    ``state_dict`` key); None when the file is not a plain state dict (a TorchScript archive, say)."""
    if str(path).endswith(".safetensors"):
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:                              # noqa: BLE001 - anything else is open_clip's to read
        return None
    state = state.get("state_dict", state) if isinstance(state, dict) else None
    if not isinstance(state, dict):
        return None
    return {k[len("module."):] if k.startswith("module.") else k: tuple(v.shape) for k, v in state.items()
            if hasattr(v, "shape")}


def checkpoint_architecture(path, model_name: str) -> Optional[str]:
    """None when the local checkpoint's tensors fit open_clip's ``model_name``; else one sentence naming the
    mismatch ("x.pt is not a ViT-B-32 checkpoint: visual.conv1.weight has shape ..., ViT-B-32 has ...")."""
    mc = open_clip.get_model_config(model_name)
    shapes = _tensor_shapes(Path(path))
    if mc is None or shapes is None or "vision_cfg" not in mc:
        return None
    vis, txt = mc["vision_cfg"], mc["text_cfg"]
    patch = vis.get("patch_size", 0)
    expected = {"visual.conv1.weight": (vis["width"], 3, patch, patch),
                "text_projection": (txt["width"], mc["embed_dim"]),
                "positional_embedding": (txt.get("context_length", 77), txt["width"])}
    for name, want in expected.items():
        got = shapes.get(name)
        if got is None:
            return f"{path} is not a {model_name} checkpoint: it has no tensor {name!r}"
        if tuple(got) != want:
            return f"{path} is not a {model_name} checkpoint: {name} has shape {tuple(got)}, {model_name} has {want}"
    return None


def _missing_weights_message(cfg: ClipConfig, err: Exception) -> str:
    return (f"Could not load weights pretrained={cfg.pretrained!r} for CLIP model {cfg.model_name!r}: {err}\n"
            f"No weights can be downloaded offline. Either run once on a connected machine, e.g.\n"
            f"  python -c \"import open_clip; open_clip.create_model_and_transforms('{cfg.model_name}', "
            f"pretrained='{cfg.pretrained}')\"\n"
            f"which fills the Hugging Face cache (then HF_HUB_OFFLINE=1 works), or point the workbench at a "
            f"local checkpoint file:\n"
            f"  export WORKBENCH_CLIP_CHECKPOINT=/path/to/{cfg.model_name}.bin   (paper presets read it), or\n"
            f"  ClipConfig.preset('paper_b32', pretrained='/path/to/{cfg.model_name}.bin')")


class ClipBackbone(nn.Module):
    """A loaded open_clip model plus its tokenizer and preprocessing, with feature helpers."""

    def __init__(self, model: nn.Module, preprocess, tokenizer, cfg: ClipConfig):
        super().__init__()
        self.model, self.preprocess, self.tokenizer, self.cfg = model, preprocess, tokenizer, cfg
        pcfg = open_clip.get_model_preprocess_cfg(model)
        self.register_buffer("mean", torch.tensor(pcfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pcfg["std"]).view(1, 3, 1, 1), persistent=False)
        size = model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.grid = int(model.visual.grid_size[0])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embed_dim(self) -> int:
        return int(self.model.visual.output_dim)

    @property
    def temperature(self) -> float:
        """1 / the model's logit scale: CLIP's own softmax temperature over cosines (1/100 for OpenAI's CLIP,
        1/800 for the calibrated sandbox CLIP). Methods whose papers write "tau = 1/100" use this."""
        scale = getattr(self.model, "logit_scale", None)
        return 1.0 / float(scale.detach().exp()) if scale is not None else 0.01

    # -------------------------------------------------------------------- inputs
    def pixels_from_uint8(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, 3] -> normalised float [B, 3, S, S] on the model's device (bicubic resize if needed)."""
        x = torch.as_tensor(np.asarray(images))
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 [B, H, W, 3]; got dtype {x.dtype}, shape {tuple(x.shape)}.")
        x = x.to(self.device).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", antialias=True,
                              align_corners=False).clamp(0, 1)
        return (x - self.mean) / self.std

    def pixels_from_pil(self, images) -> torch.Tensor:
        """A list of PIL images -> [B, 3, S, S] through open_clip's own preprocessing."""
        return torch.stack([self.preprocess(im.convert("RGB")) for im in images]).to(self.device)

    def tokenize(self, texts) -> torch.Tensor:
        """list[str] -> int token ids [B, context_length] (open_clip's BPE tokenizer)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not a single string; wrap it: [text].")
        return self.tokenizer(list(texts)).to(self.device)

    # -------------------------------------------------------------------- features
    def encode_images(self, pixels: torch.Tensor) -> ImageFeatures:
        """pixels [B, 3, S, S] -> ImageFeatures (global [B, D], tokens [B, N, W], patches [B, N, D])."""
        visual = self.model.visual
        previous = visual.output_tokens
        visual.output_tokens = True          # local toggle: restored below, never left on
        try:
            pooled, tokens = visual(pixels)
        finally:
            visual.output_tokens = previous
        patches = tokens @ visual.proj if visual.proj is not None else tokens
        if self.cfg.pool_grid is not None and self.cfg.pool_grid != self.grid:
            tokens, patches = (self._pool(t) for t in (tokens, patches))
        return ImageFeatures(pooled, tokens, patches)

    def encode_images_with_attention(self, pixels: torch.Tensor) -> tuple:
        """pixels [B, 3, S, S] -> (ImageFeatures, attention [B, 1 + N, 1 + N]): the last ViT block's attention
        weights (head-averaged, computed on ``ln_1`` of that block's input, token 0 = CLS), rows sum to 1. With
        ``pool_grid`` the patch rows are averaged and the patch columns summed over each pooled cell, so rows
        still sum to 1 and index the pooled patches (MacCap's sub-region aggregation reads them)."""
        block = self.model.visual.transformer.resblocks[-1]
        seen = {}

        def grab(module, args, kwargs):
            seen["x"] = args[0] if args else kwargs["q_x"]
        handle = block.register_forward_pre_hook(grab, with_kwargs=True)
        try:
            feats = self.encode_images(pixels)
        finally:
            handle.remove()
        x = block.ln_1(seen["x"])
        if not getattr(block.attn, "batch_first", False):      # open_clip < 2.24 runs sequence-first
            x = x.transpose(0, 1)
        _, attn = block.attn(x, x, x, need_weights=True, average_attn_weights=True)     # [B, T, T]
        if self.cfg.pool_grid is not None and self.cfg.pool_grid != self.grid:
            attn = self._pool_attention(attn)
        return feats, attn.float()

    def _pool_attention(self, attn: torch.Tensor) -> torch.Tensor:
        """[B, 1 + g*g, 1 + g*g] -> [B, 1 + p*p, 1 + p*p]: patch columns summed, patch rows averaged per cell."""
        p = self.cfg.pool_grid
        factor = (self.grid / p) ** 2
        cols = torch.cat([attn[:, :, :1], self._pool(attn[:, :, 1:].transpose(1, 2)).transpose(1, 2) * factor], 2)
        return torch.cat([cols[:, :1], self._pool(cols[:, 1:])], dim=1)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """[B, g*g, C] -> [B, p*p, C] by average pooling the patch grid (PCM-Net's 16x16 -> 8x8 for L/14)."""
        b, n, c = x.shape
        grid = x.transpose(1, 2).reshape(b, c, self.grid, self.grid)
        pooled = F.adaptive_avg_pool2d(grid, self.cfg.pool_grid)
        return pooled.flatten(2).transpose(1, 2)

    def encode_texts(self, texts) -> torch.Tensor:
        """list[str] -> [B, D] projected text embeddings (not normalised)."""
        return self.model.encode_text(self.tokenize(texts))

    def pixels(self, images) -> torch.Tensor:
        """uint8 [B, H, W, 3] arrays, or a list of PIL images / image paths -> [B, 3, S, S]."""
        if isinstance(images, (list, tuple)):
            from PIL import Image
            return self.pixels_from_pil([Image.open(im) if isinstance(im, (str, os.PathLike)) else im
                                         for im in images])
        return self.pixels_from_uint8(images)

    @torch.inference_mode()
    def image_features(self, images, batch_size: int = 256, progress: bool = False) -> ImageFeatures:
        """Encode images (see ``pixels``) in batches; returns CPU ImageFeatures."""
        from tqdm.auto import tqdm
        parts = []
        for i in tqdm(range(0, len(images), batch_size), desc="encode images", disable=not progress):
            parts.append(self.encode_images(self.pixels(images[i:i + batch_size])).to("cpu"))
        return ImageFeatures(*(torch.cat([getattr(p, k) for p in parts]) for k in ("global_", "tokens", "patches")))

    @torch.inference_mode()
    def text_features(self, texts, batch_size: int = 512, progress: bool = False) -> torch.Tensor:
        """Encode list[str] in batches; returns CPU [B, D]."""
        from tqdm.auto import tqdm
        texts = list(texts)
        parts = [self.encode_texts(texts[i:i + batch_size]).cpu()
                 for i in tqdm(range(0, len(texts), batch_size), desc="encode texts", disable=not progress)]
        return torch.cat(parts) if parts else torch.empty(0, self.embed_dim)


def load_clip(cfg: ClipConfig, device: str | torch.device = "auto") -> ClipBackbone:
    """Build the CLIP that ``cfg`` names through ``open_clip.create_model_and_transforms``."""
    if cfg.model_name not in open_clip.list_models():
        raise ValueError(f"model_name={cfg.model_name!r} is not an open_clip model; known examples: "
                         "'ViT-B-32', 'ViT-L-14', 'wb-sandbox-vit', 'wb-tiny-vit'.")
    dev = resolve_device(device)
    pretrained = _resolve_pretrained(cfg)
    precision = cfg.precision if dev.type == "cuda" else "fp32"
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            cfg.model_name, pretrained=pretrained, precision=precision, device=dev)
    except RuntimeError as err:
        if pretrained is None:
            raise
        raise WeightsUnavailableError(_missing_weights_message(cfg, err)) from err
    model.eval()
    return ClipBackbone(model, preprocess, open_clip.get_tokenizer(cfg.model_name), cfg)


def save_clip_weights(backbone_or_model: nn.Module, path: str | os.PathLike, half: bool = True) -> Path:
    """Save an open_clip model's state dict as safetensors (fp16 by default), atomically."""
    from safetensors.torch import save_file

    from ..utils.io import atomic_write
    model = backbone_or_model.model if isinstance(backbone_or_model, ClipBackbone) else backbone_or_model
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
             for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(state, tmp))
