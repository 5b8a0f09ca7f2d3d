"""Renderer for sandbox scenes: the "real" images of the sandbox world.

Shapes are drawn with PIL at ``image_size * supersample`` and box-downsampled (anti-aliasing), on a
textured background, with per-object colour jitter, small rotations, a global lighting gradient and
pixel noise. Deterministic from ``scene.render_seed``.

    img = render_scene(scene, cfg)           # uint8 [H, W, 3]
    batch = render_scenes(scenes, cfg)       # uint8 [B, H, W, 3]
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from ..config import WorldConfig
from .world import Scene, SceneObject

RGB = {"red": (220, 30, 35), "orange": (245, 130, 20), "yellow": (240, 225, 40), "green": (40, 175, 60),
       "blue": (35, 80, 225), "purple": (140, 45, 185), "pink": (250, 120, 190), "white": (245, 245, 245)}


def _polygon(shape: str) -> list:
    """Unit-radius outline of ``shape`` as (x, y) pairs, y pointing down."""
    if shape == "square":
        return [(-0.78, -0.78), (0.78, -0.78), (0.78, 0.78), (-0.78, 0.78)]
    if shape == "diamond":
        return [(0, -1), (0.72, 0), (0, 1), (-0.72, 0)]
    if shape == "triangle":
        return [(math.cos(a), math.sin(a)) for a in np.deg2rad([-90, 30, 150])]
    if shape == "star":
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.42
            a = math.radians(-90 + 36 * k)
            pts.append((r * math.cos(a), r * math.sin(a)))
        return pts
    if shape == "cross":
        t = 0.3
        return [(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1), (-t, t), (-1, t),
                (-1, -t), (-t, -t)]
    if shape == "heart":
        ts = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        xs = 16 * np.sin(ts) ** 3
        ys = -(13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts))
        return list(zip(xs / 17.0, (ys + 2.5) / 17.0))
    raise ValueError(f"shape={shape!r} has no polygon outline")


def _draw_mask(obj: SceneObject, side: int) -> Image.Image:
    """An L-mode mask (side x side) of one object."""
    mask = Image.new("L", (side, side), 0)
    d = ImageDraw.Draw(mask)
    cx, cy, r = obj.x * side, obj.y * side, obj.radius * side
    if obj.shape in ("circle", "crescent"):
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        if obj.shape == "crescent":
            a = math.radians(obj.rotation)
            ox, oy = cx + 0.45 * r * math.cos(a), cy + 0.45 * r * math.sin(a) - 0.2 * r
            d.ellipse([ox - 0.85 * r, oy - 0.85 * r, ox + 0.85 * r, oy + 0.85 * r], fill=0)
        return mask
    a = math.radians(obj.rotation)
    ca, sa = math.cos(a), math.sin(a)
    pts = [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in _polygon(obj.shape)]
    d.polygon(pts, fill=255)
    return mask


def _muted(rng) -> np.ndarray:
    """A desaturated mid-dark tone so every object colour stands out."""
    v = rng.uniform(60, 140)
    tint = rng.uniform(-18, 18, size=3)
    return np.clip(v + tint, 0, 255)


def background(kind: str, side: int, rng) -> np.ndarray:
    """float32 [side, side, 3] texture of the given kind."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    c1, c2 = _muted(rng), _muted(rng)
    if kind == "plain":
        t = np.zeros_like(xx)
    elif kind == "checkered":
        n = rng.integers(3, 7)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32)
    elif kind == "striped":
        ang, n = rng.uniform(0, math.pi), rng.integers(4, 9)
        t = (np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * n * 2 * math.pi) > 0).astype(np.float32)
    elif kind == "dotted":
        n = rng.integers(4, 8)
        fx, fy = (xx * n) % 1 - 0.5, (yy * n) % 1 - 0.5
        t = (fx ** 2 + fy ** 2 < 0.06).astype(np.float32)
    elif kind == "wooden":
        c1 = np.array([120, 80, 45], np.float32) + rng.uniform(-15, 15, 3)
        c2 = c1 * 0.7
        freq = rng.uniform(10, 18)
        t = 0.5 + 0.5 * np.sin(yy * freq * 2 * math.pi + 2.5 * np.sin(xx * 3 * math.pi + rng.uniform(0, 6)))
    else:
        raise ValueError(f"background kind={kind!r} is unknown")
    img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    low = Image.fromarray(rng.normal(0, 7, size=(4, 4)).astype(np.float32), mode="F")  # smooth blotches
    low = np.asarray(low.resize((side, side), Image.BILINEAR), dtype=np.float32)
    return (img + low[..., None]).astype(np.float32)


def render_scene(scene: Scene, cfg: WorldConfig) -> np.ndarray:
    """uint8 [H, W, 3] image of ``scene``."""
    rng = np.random.default_rng(scene.render_seed)
    side = cfg.image_size * cfg.supersample
    canvas = Image.fromarray(np.clip(background(scene.background, side, rng), 0, 255).astype(np.uint8))
    for obj in scene.objects:
        colour = np.clip(np.array(RGB[obj.colour]) + rng.uniform(-18, 18, 3), 0, 255).astype(int)
        canvas.paste(tuple(int(c) for c in colour), (0, 0), _draw_mask(obj, side))
    img = np.asarray(canvas.resize((cfg.image_size, cfg.image_size), Image.BOX), dtype=np.float32)
    # lighting: a linear brightness gradient in a random direction, and a global gain
    yy, xx = np.mgrid[0:cfg.image_size, 0:cfg.image_size].astype(np.float32) / cfg.image_size - 0.5
    ang = rng.uniform(0, 2 * math.pi)
    light = rng.uniform(0.9, 1.1) * (1 + rng.uniform(0.0, 0.25) * (xx * math.cos(ang) + yy * math.sin(ang)))
    img = img * light[..., None] + rng.normal(0, cfg.noise_std, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_scenes(scenes, cfg: WorldConfig, progress: bool = False) -> np.ndarray:
    """uint8 [B, H, W, 3] images of ``scenes``."""
    from tqdm.auto import tqdm
    out = np.empty((len(scenes), cfg.image_size, cfg.image_size, 3), np.uint8)
    for i, s in enumerate(tqdm(scenes, desc="render", disable=not progress)):
        out[i] = render_scene(s, cfg)
    return out
