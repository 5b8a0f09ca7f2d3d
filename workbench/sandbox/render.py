"""Renderer for sandbox scenes: the "real" images of the sandbox world.

Things are drawn as unions of polygons (``PARTS``) with PIL at ``image_size * supersample`` and
box-downsampled (anti-aliasing), striped or spotted where the object is, on a drawn place (sky, grass,
sea, sand, road, wall, floor, snow), with per-object colour jitter, small rotations, a global lighting gradient and
pixel noise. Deterministic from ``scene.render_seed``.

    img = render_scene(scene, cfg)           # uint8 [H, W, 3]
    batch = render_scenes(scenes, cfg)       # uint8 [B, H, W, 3]
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from ..config import WorldConfig
from .world import PROP_RADIUS, PROPS, Scene, SceneObject

RGB = {"red": (220, 30, 35), "orange": (245, 130, 20), "yellow": (240, 225, 40), "green": (40, 175, 60),
       "blue": (35, 80, 225), "purple": (140, 45, 185), "pink": (250, 120, 190), "white": (245, 245, 245)}


def _ell(cx, cy, rx, ry, n: int = 20) -> list:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))


def _rect(x0, y0, x1, y1) -> list:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _petals() -> list:
    return [_ell(0.3 * math.cos(a), -0.35 + 0.3 * math.sin(a), 0.22, 0.22, 12)
            for a in np.linspace(0, 2 * math.pi, 5, endpoint=False)]


# Each category as polygons in unit coordinates (x right, y down, the thing fits the unit disc);
# HOLES are cut out of the silhouette (windows of a bus).
PARTS = {
    "cat": [_ell(-0.1, 0.3, 0.6, 0.4), _ell(0.5, -0.3, 0.33, 0.3), [(0.24, -0.45), (0.3, -0.85), (0.46, -0.56)],
            [(0.56, -0.58), (0.74, -0.85), (0.8, -0.42)], [(-0.62, 0.3), (-0.95, -0.55), (-0.8, -0.6), (-0.5, 0.1)]],
    "dog": [_ell(-0.1, 0.1, 0.65, 0.32), _ell(0.62, -0.3, 0.3, 0.26), _ell(0.95, -0.2, 0.16, 0.11),
            _ell(0.45, -0.12, 0.11, 0.25), _rect(-0.65, 0.2, -0.48, 0.85), _rect(0.25, 0.2, 0.42, 0.85),
            [(-0.7, 0.0), (-1.0, -0.45), (-0.9, -0.5), (-0.6, -0.1)]],
    "bird": [_ell(-0.05, 0.1, 0.6, 0.36), _ell(0.48, -0.3, 0.27, 0.27), [(0.7, -0.4), (1.0, -0.25), (0.7, -0.15)],
             [(-0.35, 0.0), (0.2, 0.0), (-0.45, -0.85)], [(-0.5, 0.1), (-1.0, -0.15), (-1.0, 0.4)]],
    "fish": [_ell(0.12, 0.0, 0.65, 0.4), [(-0.42, 0.0), (-1.0, -0.5), (-1.0, 0.5)],
             [(-0.1, -0.3), (0.3, -0.3), (0.0, -0.65)]],
    "car": [_rect(-1.0, -0.05, 1.0, 0.42), [(-0.5, -0.05), (-0.3, -0.5), (0.35, -0.5), (0.58, -0.05)],
            _ell(-0.55, 0.5, 0.24, 0.24), _ell(0.55, 0.5, 0.24, 0.24)],
    "bus": [_rect(-1.0, -0.62, 1.0, 0.45), _ell(-0.6, 0.5, 0.2, 0.2), _ell(0.6, 0.5, 0.2, 0.2)],
    "boat": [[(-1.0, 0.25), (1.0, 0.25), (0.68, 0.65), (-0.68, 0.65)], _rect(-0.05, -0.95, 0.05, 0.25),
             [(0.1, -0.9), (0.1, 0.15), (0.75, 0.15)], [(-0.1, -0.7), (-0.1, 0.15), (-0.6, 0.15)]],
    "plane": [_ell(0.0, 0.0, 1.0, 0.17), [(-0.15, 0.0), (0.25, 0.0), (-0.2, 0.95), (-0.45, 0.95)],
              [(-0.15, 0.0), (0.25, 0.0), (-0.2, -0.95), (-0.45, -0.95)], [(-0.7, 0.0), (-0.95, -0.5), (-1.0, 0.0)]],
    "chair": [_rect(-0.5, 0.0, 0.5, 0.18), _rect(-0.5, -0.95, -0.32, 0.18), _rect(-0.5, 0.18, -0.36, 0.9),
              _rect(0.36, 0.18, 0.5, 0.9)],
    "table": [_rect(-1.0, -0.35, 1.0, -0.12), _rect(-0.88, -0.12, -0.7, 0.8), _rect(0.7, -0.12, 0.88, 0.8)],
    "lamp": [[(-0.42, -0.95), (0.42, -0.95), (0.7, -0.3), (-0.7, -0.3)], _rect(-0.07, -0.3, 0.07, 0.72),
             _ell(0.0, 0.8, 0.48, 0.15)],
    "bed": [_rect(-1.0, 0.0, 1.0, 0.42), _rect(-1.0, -0.6, -0.8, 0.75), _rect(0.82, -0.25, 1.0, 0.75),
            _ell(-0.55, -0.08, 0.22, 0.13)],
    "tree": [_rect(-0.13, 0.0, 0.13, 1.0), _ell(0.0, -0.3, 0.66, 0.66)],
    "flower": [_rect(-0.05, 0.0, 0.05, 1.0), *_petals(), _ell(0.0, -0.35, 0.18, 0.18), _ell(0.2, 0.5, 0.2, 0.08)],
    "cactus": [_rect(-0.2, -0.9, 0.2, 1.0), _rect(-0.65, 0.05, -0.2, 0.22), _rect(-0.65, -0.5, -0.48, 0.22),
               _rect(0.2, -0.25, 0.62, -0.08), _rect(0.45, -0.75, 0.62, -0.08)],
    "leaf": [[(math.sin(t) * 0.55 * math.sin(t / 2) ** 0.2, -math.cos(t) * 0.85) for t in np.linspace(0, math.pi, 12)]
             + [(-math.sin(t) * 0.55, math.cos(t) * 0.85) for t in np.linspace(0, math.pi, 12)],
             _rect(-0.04, 0.8, 0.04, 1.0)],
}
HOLES: dict = {}
# Parts in fixed tones drawn over the body (wheels, windows, eyes, trunks, stems): what tells a thing apart at 8 px
# patches is as much its inner structure as its outline.
DARK, GLASS, WOOD, LEAF, LIGHT = (30, 30, 35), (190, 220, 240), (110, 70, 40), (50, 140, 50), (245, 240, 200)
DETAILS = {
    "cat": [(DARK, _ell(0.42, -0.33, 0.06, 0.08)), (DARK, _ell(0.62, -0.33, 0.06, 0.08)), (DARK, _ell(0.55, -0.17, 0.07, 0.05))],
    "dog": [(DARK, _ell(1.05, -0.22, 0.09, 0.08)), (DARK, _ell(0.62, -0.38, 0.06, 0.06)), (DARK, _ell(0.45, -0.12, 0.1, 0.24))],
    "bird": [(DARK, _ell(0.55, -0.33, 0.07, 0.07)), ((235, 150, 30), [(0.7, -0.4), (1.0, -0.25), (0.7, -0.15)])],
    "fish": [(DARK, _ell(0.5, -0.08, 0.08, 0.08)), (LIGHT, _ell(0.05, 0.05, 0.08, 0.3))],
    "car": [(DARK, _ell(-0.55, 0.5, 0.24, 0.24)), (DARK, _ell(0.55, 0.5, 0.24, 0.24)),
            (GLASS, [(-0.38, -0.1), (-0.24, -0.42), (0.3, -0.42), (0.46, -0.1)])],
    "bus": [(DARK, _ell(-0.6, 0.5, 0.2, 0.2)), (DARK, _ell(0.6, 0.5, 0.2, 0.2))]
           + [(GLASS, _rect(x, -0.45, x + 0.3, -0.1)) for x in (-0.85, -0.45, -0.05, 0.35)],
    "boat": [(LIGHT, [(0.1, -0.9), (0.1, 0.15), (0.75, 0.15)]), (LIGHT, [(-0.1, -0.7), (-0.1, 0.15), (-0.6, 0.15)]),
             (DARK, _rect(-0.05, -0.95, 0.05, 0.25))],
    "plane": [(GLASS, _rect(x, -0.07, x + 0.12, 0.05)) for x in (-0.5, -0.25, 0.0, 0.25, 0.5)],
    "chair": [(WOOD, _rect(-0.5, 0.18, -0.36, 0.9)), (WOOD, _rect(0.36, 0.18, 0.5, 0.9))],
    "table": [(WOOD, _rect(-0.88, -0.12, -0.7, 0.8)), (WOOD, _rect(0.7, -0.12, 0.88, 0.8))],
    "lamp": [(LIGHT, _ell(0.0, -0.25, 0.3, 0.1)), (DARK, _rect(-0.07, -0.3, 0.07, 0.72)), (DARK, _ell(0.0, 0.8, 0.48, 0.15))],
    "bed": [(LIGHT, _rect(-0.8, 0.0, 0.85, 0.15)), (LIGHT, _ell(-0.55, -0.08, 0.22, 0.13)), (WOOD, _rect(-1.0, -0.6, -0.8, 0.75))],
    "tree": [(WOOD, _rect(-0.13, 0.3, 0.13, 1.0))],
    "flower": [(LEAF, _rect(-0.05, 0.0, 0.05, 1.0)), (LEAF, _ell(0.2, 0.5, 0.2, 0.08)), ((240, 220, 60), _ell(0.0, -0.35, 0.15, 0.15))],
    "cactus": [(WOOD, [(-0.35, 0.6), (0.35, 0.6), (0.28, 1.0), (-0.28, 1.0)])]
              + [(DARK, _ell(x, y, 0.04, 0.04)) for x, y in ((0.0, -0.6), (0.0, -0.2), (0.0, 0.2), (-0.55, -0.2), (0.53, -0.5))],
    "leaf": [(DARK, _rect(-0.03, -0.8, 0.03, 1.0))],
}


# Props (``world.PROPS``): small icons in fixed tones, drawn as (tone, polygon) in unit coordinates. At 64 px a
# prop spans about one CLIP patch: its silhouette and tones are what a model can tell apart, as real CLIP tells a
# frisbee from a plate by little more.
def _tri(a, b, c):
    return [a, b, c]


RED, BLUE, YELLOW, BROWN, GREY, BLACK, WHITE, GREEN_, ORANGE_, PINK_ = (
    (200, 40, 40), (40, 70, 200), (235, 205, 40), (120, 75, 35), (140, 140, 150), (25, 25, 30), (240, 240, 240),
    (40, 150, 60), (240, 140, 30), (235, 120, 180))
PROP_PARTS = {
    "ball": [(ORANGE_, _ell(0, 0, 0.8, 0.8)), (BLACK, _rect(-0.8, -0.06, 0.8, 0.06))],
    "kite": [(RED, [(0, -1), (0.6, 0), (0, 0.6), (-0.6, 0)]), (BLACK, _rect(-0.04, 0.6, 0.04, 1))],
    "umbrella": [(BLUE, [*_ell(0, 0, 0.9, 0.7, 10)[5:], (0.9, 0)]), (BLACK, _rect(-0.05, 0, 0.05, 0.9))],
    "bench": [(BROWN, _rect(-1, -0.2, 1, 0.05)), (BLACK, _rect(-0.9, 0.05, -0.75, 0.6)), (BLACK, _rect(0.75, 0.05, 0.9, 0.6))],
    "bicycle": [(BLACK, _ell(-0.55, 0.3, 0.4, 0.4)), (BLACK, _ell(0.55, 0.3, 0.4, 0.4)), (RED, _rect(-0.55, -0.1, 0.55, 0.05))],
    "flag": [(GREY, _rect(-0.7, -1, -0.6, 1)), (RED, _rect(-0.6, -1, 0.8, -0.2))],
    "sign": [(YELLOW, [(0, -1), (0.8, -0.2), (0, 0.6), (-0.8, -0.2)]), (GREY, _rect(-0.05, 0.4, 0.05, 1))],
    "traffic cone": [(ORANGE_, _tri((0, -1), (0.6, 0.8), (-0.6, 0.8))), (WHITE, _rect(-0.35, 0, 0.35, 0.2))],
    "box": [(BROWN, _rect(-0.7, -0.6, 0.7, 0.7)), (YELLOW, _rect(-0.7, -0.1, 0.7, 0.05))],
    "bottle": [(GREEN_, _rect(-0.3, -0.3, 0.3, 0.9)), (GREEN_, _rect(-0.1, -0.9, 0.1, -0.3))],
    "cup": [(WHITE, _rect(-0.5, -0.5, 0.4, 0.6)), (WHITE, _ell(0.55, 0, 0.25, 0.25))],
    "book": [(BLUE, _rect(-0.7, -0.8, 0.6, 0.8)), (WHITE, _rect(0.6, -0.7, 0.75, 0.7))],
    "clock": [(WHITE, _ell(0, 0, 0.85, 0.85)), (BLACK, _rect(-0.04, -0.6, 0.04, 0)), (BLACK, _rect(0, -0.04, 0.45, 0.04))],
    "basket": [(BROWN, [(-0.8, -0.1), (0.8, -0.1), (0.55, 0.8), (-0.55, 0.8)]), (BROWN, _rect(-0.5, -0.8, 0.5, -0.65))],
    "bucket": [(GREY, [(-0.7, -0.6), (0.7, -0.6), (0.5, 0.8), (-0.5, 0.8)])],
    "ladder": [(BROWN, _rect(-0.6, -1, -0.45, 1)), (BROWN, _rect(0.45, -1, 0.6, 1))]
              + [(BROWN, _rect(-0.5, y, 0.5, y + 0.12)) for y in (-0.7, -0.2, 0.3, 0.75)],
    "fence": [(WHITE, _rect(x, -0.7, x + 0.22, 0.9)) for x in (-0.9, -0.4, 0.1, 0.6)] + [(WHITE, _rect(-1, -0.2, 1, -0.05))],
    "mailbox": [(BLUE, _rect(-0.6, -0.7, 0.6, 0.1)), (GREY, _rect(-0.08, 0.1, 0.08, 1))],
    "balloon": [(PINK_, _ell(0, -0.3, 0.55, 0.65)), (BLACK, _rect(-0.03, 0.35, 0.03, 1))],
    "frisbee": [(YELLOW, _ell(0, 0, 0.9, 0.35))],
    "skateboard": [(BLACK, _ell(0, -0.05, 1, 0.2)), (RED, _ell(-0.6, 0.25, 0.15, 0.15)), (RED, _ell(0.6, 0.25, 0.15, 0.15))],
    "suitcase": [(BROWN, _rect(-0.8, -0.5, 0.8, 0.8)), (BLACK, _rect(-0.25, -0.8, 0.25, -0.5))],
    "backpack": [(GREEN_, _ell(0, 0.1, 0.65, 0.85)), (BROWN, _rect(-0.4, 0.2, 0.4, 0.6))],
    "hat": [(BLACK, _rect(-0.5, -0.8, 0.5, 0.2)), (BLACK, _rect(-0.95, 0.2, 0.95, 0.4)), (RED, _rect(-0.5, 0, 0.5, 0.15))],
    "shoe": [(BROWN, [(-0.9, -0.3), (-0.3, -0.3), (0.1, 0.1), (0.9, 0.2), (0.9, 0.6), (-0.9, 0.6)])],
    "pot": [(GREY, _ell(0, 0.2, 0.75, 0.6)), (BLACK, _rect(-0.9, -0.35, 0.9, -0.2))],
    "vase": [(BLUE, _ell(0, 0.3, 0.55, 0.6)), (BLUE, _rect(-0.2, -0.9, 0.2, -0.2))],
    "bowl": [(WHITE, _ell(0, 0, 0.9, 0.5, 10)[:6])],
    "guitar": [(BROWN, _ell(0, 0.45, 0.5, 0.5)), (BROWN, _rect(-0.08, -1, 0.08, 0)), (BLACK, _ell(0, 0.4, 0.15, 0.15))],
    "drum": [(RED, _rect(-0.7, -0.4, 0.7, 0.6)), (WHITE, _ell(0, -0.4, 0.7, 0.2))],
    "bell": [(YELLOW, [(-0.2, -0.8), (0.2, -0.8), (0.4, 0.0), (0.8, 0.6), (-0.8, 0.6), (-0.4, 0.0)])],
    "tent": [(GREEN_, _tri((0, -0.9), (1, 0.8), (-1, 0.8))), (BLACK, _tri((0, 0.1), (0.25, 0.8), (-0.25, 0.8)))],
    "barrel": [(BROWN, _ell(0, 0, 0.6, 0.9)), (BLACK, _rect(-0.6, -0.45, 0.6, -0.35)), (BLACK, _rect(-0.6, 0.35, 0.6, 0.45))],
    "crate": [(YELLOW, _rect(-0.75, -0.75, 0.75, 0.75)), (BROWN, [(-0.75, -0.6), (-0.6, -0.75), (0.75, 0.6), (0.6, 0.75)])],
    "wheelbarrow": [(GREEN_, [(-0.9, -0.4), (0.5, -0.4), (0.2, 0.3), (-0.7, 0.3)]), (BLACK, _ell(0.5, 0.6, 0.25, 0.25))],
    "shovel": [(GREY, [(-0.35, 0.2), (0.35, 0.2), (0.2, 0.95), (-0.2, 0.95)]), (BROWN, _rect(-0.06, -1, 0.06, 0.2))],
    "broom": [(YELLOW, _tri((0, 0.2), (0.6, 1), (-0.6, 1))), (BROWN, _rect(-0.06, -1, 0.06, 0.3))],
    "teapot": [(PINK_, _ell(0, 0.15, 0.6, 0.5)), (PINK_, _tri((0.5, 0.1), (1, -0.4), (0.6, 0.4))), (PINK_, _ell(0, -0.45, 0.15, 0.12))],
    "candle": [(WHITE, _rect(-0.2, -0.4, 0.2, 1)), (ORANGE_, _ell(0, -0.65, 0.15, 0.25))],
    "anchor": [(GREY, _rect(-0.08, -0.8, 0.08, 0.7)), (GREY, _ell(0, -0.85, 0.2, 0.2)), (GREY, _rect(-0.7, 0.5, 0.7, 0.7))],
    "lantern": [(BLACK, _rect(-0.45, -0.6, 0.45, 0.8)), (YELLOW, _rect(-0.3, -0.4, 0.3, 0.6)), (BLACK, _ell(0, -0.8, 0.25, 0.2))],
    "trophy": [(YELLOW, [(-0.6, -0.9), (0.6, -0.9), (0.3, 0.0), (-0.3, 0.0)]), (YELLOW, _rect(-0.1, 0, 0.1, 0.6)),
               (BROWN, _rect(-0.5, 0.6, 0.5, 0.9))],
    "helmet": [(RED, [*_ell(0, 0.2, 0.85, 0.85, 12)[6:], (0.85, 0.2)]), (BLACK, _rect(-0.85, 0.2, 0.85, 0.35))],
    "rope": [(BROWN, _ell(0, 0, 0.8, 0.8)), (BROWN, _ell(0, 0, 0.5, 0.5)), (YELLOW, _ell(0, 0, 0.2, 0.2))],
    "ring": [(YELLOW, _ell(0, 0, 0.7, 0.7)), (WHITE, _ell(0, 0, 0.4, 0.4)), (BLUE, _ell(0, -0.7, 0.2, 0.2))],
    "key": [(YELLOW, _ell(-0.5, 0, 0.4, 0.4)), (YELLOW, _rect(-0.1, -0.1, 0.9, 0.1)), (YELLOW, _rect(0.6, 0.1, 0.75, 0.4))],
    "lock": [(GREY, _rect(-0.6, -0.1, 0.6, 0.8)), (GREY, _rect(-0.4, -0.8, -0.25, -0.1)), (GREY, _rect(0.25, -0.8, 0.4, -0.1)),
             (BLACK, _ell(0, 0.35, 0.12, 0.15))],
    "scarf": [(RED, _rect(-0.9, -0.3, 0.9, 0.05)), (RED, _rect(0.3, 0.05, 0.6, 0.9)), (WHITE, _rect(0.3, 0.55, 0.6, 0.65))],
    "glove": [(BLUE, _ell(0, 0.3, 0.5, 0.55)), (BLUE, _rect(-0.45, -0.7, -0.25, 0.2)), (BLUE, _rect(-0.15, -0.9, 0.05, 0.2)),
              (BLUE, _rect(0.15, -0.8, 0.35, 0.2)), (BLUE, _ell(0.6, 0.1, 0.2, 0.12))],
    "sock": [(WHITE, _rect(-0.3, -0.9, 0.2, 0.4)), (WHITE, _ell(0.2, 0.45, 0.5, 0.3)), (RED, _rect(-0.3, -0.9, 0.2, -0.6))],
    "boot": [(BLACK, _rect(-0.4, -0.9, 0.2, 0.5)), (BLACK, _rect(-0.4, 0.3, 0.8, 0.8))],
    "pillow": [(PINK_, _ell(0, 0, 0.95, 0.55))],
    "blanket": [(BLUE, _rect(-0.9, -0.6, 0.9, 0.6)), (YELLOW, _rect(-0.9, -0.1, 0.9, 0.1)), (YELLOW, _rect(-0.1, -0.6, 0.1, 0.6))],
    "mirror": [(BROWN, _ell(0, 0, 0.6, 0.9)), (WHITE, _ell(0, 0, 0.45, 0.75))],
    "window": [(WHITE, _rect(-0.8, -0.8, 0.8, 0.8)), (BLUE, _rect(-0.65, -0.65, -0.08, -0.08)),
               (BLUE, _rect(0.08, -0.65, 0.65, -0.08)), (BLUE, _rect(-0.65, 0.08, -0.08, 0.65)), (BLUE, _rect(0.08, 0.08, 0.65, 0.65))],
    "door": [(BROWN, _rect(-0.55, -0.95, 0.55, 0.95)), (YELLOW, _ell(0.3, 0.05, 0.1, 0.1))],
    "chimney": [(RED, _rect(-0.4, -0.5, 0.4, 0.95)), (BLACK, _rect(-0.5, -0.65, 0.5, -0.5)), (GREY, _ell(0.1, -0.85, 0.3, 0.15))],
    "wagon": [(RED, _rect(-0.8, -0.3, 0.8, 0.3)), (BLACK, _ell(-0.5, 0.5, 0.22, 0.22)), (BLACK, _ell(0.5, 0.5, 0.22, 0.22)),
              (BLACK, _rect(0.8, -0.1, 1.0, -0.02))],
    "sled": [(RED, _rect(-0.8, -0.2, 0.8, 0.15)), (GREY, _rect(-0.9, 0.4, 0.9, 0.5)), (GREY, _rect(-0.5, 0.15, -0.4, 0.4)),
             (GREY, _rect(0.4, 0.15, 0.5, 0.4))],
    "kettle": [(GREY, _ell(0, 0.2, 0.7, 0.6)), (BLACK, _rect(-0.4, -0.7, 0.4, -0.55)), (GREY, _tri((0.6, 0.0), (1.0, -0.4), (0.6, 0.3)))],
    "pan": [(BLACK, _ell(-0.2, 0, 0.6, 0.6)), (BROWN, _rect(0.35, -0.08, 1.0, 0.08))],
    "fork": [(GREY, _rect(-0.06, -0.2, 0.06, 1.0)), (GREY, _rect(-0.35, -0.3, 0.35, -0.15))]
            + [(GREY, _rect(x, -0.9, x + 0.1, -0.3)) for x in (-0.35, -0.05, 0.25)],
    "spoon": [(GREY, _ell(0, -0.5, 0.3, 0.42)), (GREY, _rect(-0.06, -0.1, 0.06, 1.0))],
    "plate": [(WHITE, _ell(0, 0, 0.9, 0.9)), (GREY, _ell(0, 0, 0.55, 0.55)), (WHITE, _ell(0, 0, 0.5, 0.5))],
    "jar": [(GREEN_, _rect(-0.5, -0.5, 0.5, 0.9)), (RED, _rect(-0.4, -0.8, 0.4, -0.5))],
    "jug": [(ORANGE_, _ell(0, 0.25, 0.55, 0.65)), (ORANGE_, _rect(-0.25, -0.9, 0.25, -0.2)), (ORANGE_, _ell(0.6, 0.1, 0.25, 0.35))],
    "parcel": [(BROWN, _rect(-0.8, -0.5, 0.8, 0.6)), (RED, _rect(-0.8, -0.05, 0.8, 0.1)), (RED, _rect(-0.08, -0.5, 0.08, 0.6))],
    "tire": [(BLACK, _ell(0, 0, 0.85, 0.85)), (GREY, _ell(0, 0, 0.35, 0.35))],
    "wheel": [(BROWN, _ell(0, 0, 0.85, 0.85)), (YELLOW, _ell(0, 0, 0.65, 0.65)),
              (BROWN, _rect(-0.06, -0.65, 0.06, 0.65)), (BROWN, _rect(-0.65, -0.06, 0.65, 0.06))],
    "hammer": [(GREY, _rect(-0.6, -0.8, 0.6, -0.45)), (BROWN, _rect(-0.08, -0.45, 0.08, 1.0))],
    "axe": [(GREY, [(0.1, -0.9), (0.8, -0.7), (0.8, 0.0), (0.1, -0.2)]), (BROWN, _rect(-0.08, -0.9, 0.1, 1.0))],
    "rake": [(BROWN, _rect(-0.06, -0.4, 0.06, 1.0)), (GREY, _rect(-0.7, -0.55, 0.7, -0.4))]
            + [(GREY, _rect(x, -0.9, x + 0.08, -0.55)) for x in (-0.7, -0.35, 0.0, 0.35, 0.62)],
    "hose": [(GREEN_, _ell(0, 0, 0.8, 0.8)), (WHITE, _ell(0, 0, 0.6, 0.6)), (GREEN_, _ell(0, 0, 0.45, 0.45)),
             (WHITE, _ell(0, 0, 0.25, 0.25))],
    "bin": [(GREEN_, [(-0.6, -0.5), (0.6, -0.5), (0.45, 0.9), (-0.45, 0.9)]), (GREEN_, _rect(-0.7, -0.7, 0.7, -0.5)),
            (BLACK, _rect(-0.15, -0.85, 0.15, -0.7))],
    "cart": [(GREY, [(-0.9, -0.5), (0.7, -0.5), (0.5, 0.3), (-0.7, 0.3)]), (BLACK, _ell(-0.5, 0.6, 0.15, 0.15)),
             (BLACK, _ell(0.3, 0.6, 0.15, 0.15)), (GREY, _rect(0.7, -0.9, 0.8, -0.5))],
    "statue": [(GREY, _ell(0, -0.6, 0.25, 0.25)), (GREY, _rect(-0.3, -0.35, 0.3, 0.5)), (WHITE, _rect(-0.6, 0.5, 0.6, 0.95))],
    "fountain": [(GREY, _rect(-0.9, 0.3, 0.9, 0.8)), (BLUE, _rect(-0.8, 0.15, 0.8, 0.3)), (BLUE, _rect(-0.08, -0.9, 0.08, 0.15)),
                 (BLUE, _ell(0, -0.6, 0.45, 0.25))],
    "pole": [(WHITE, _rect(-0.1, -1.0, 0.1, 1.0)), (RED, _rect(-0.1, -0.6, 0.1, -0.3)), (RED, _rect(-0.1, 0.1, 0.1, 0.4))],
    "banner": [(GREY, _rect(-0.9, -0.9, -0.8, 0.9)), (GREY, _rect(0.8, -0.9, 0.9, 0.9)), (BLUE, _rect(-0.8, -0.8, 0.8, -0.1)),
               (YELLOW, _rect(-0.5, -0.55, 0.5, -0.35))],
}


assert set(PROP_PARTS) == set(PROPS), sorted(set(PROPS) ^ set(PROP_PARTS))


def draw_props(canvas: np.ndarray, props, side: int) -> np.ndarray:
    """Paint ``props`` (``world.Prop``) onto a float [side, side, 3] canvas, in place."""
    for prop in props:
        cx, cy, r = prop.x * side, prop.y * side, PROP_RADIUS * side
        for tone, poly in PROP_PARTS[prop.kind]:
            _fill(canvas, [(cx + r * x, cy + r * y) for x, y in poly], tone)
    return canvas


def _composite(canvas: np.ndarray, mask: Image.Image, paint) -> None:
    """Blend ``paint`` (an RGB triple, or a function of the mask's bounding box giving float [h, w, 3]) into the
    float [side, side, 3] ``canvas`` through the L-mode ``mask``, in place."""
    box = mask.getbbox()
    if box is None:
        return
    x0, y0, x1, y1 = box
    a = np.asarray(mask.crop(box), np.float32)[..., None] / 255.0
    colour = paint(box) if callable(paint) else np.array(paint, np.float32)
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - a) + colour * a


def _fill(canvas: np.ndarray, polygon: list, tone) -> None:
    """One flat-toned polygon (canvas pixel coordinates) onto ``canvas``, in place."""
    m = Image.new("L", (canvas.shape[1], canvas.shape[0]), 0)
    ImageDraw.Draw(m).polygon(polygon, fill=255)
    _composite(canvas, m, tone)


def _placer(obj: SceneObject, side: int):
    cx, cy, r = obj.x * side, obj.y * side, obj.radius * side
    a = math.radians(obj.rotation)
    ca, sa = math.cos(a), math.sin(a)
    return lambda poly: [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in poly]


def draw_details(canvas: np.ndarray, obj: SceneObject, side: int) -> np.ndarray:
    """Paint ``obj``'s fixed-tone parts (``DETAILS``) onto a float [side, side, 3] canvas, in place."""
    place = _placer(obj, side)
    for tone, poly in DETAILS.get(obj.shape, []):
        _fill(canvas, place(poly), tone)
    return canvas


def paint_object(canvas: np.ndarray, obj: SceneObject, side: int, colour) -> np.ndarray:
    """Paint ``obj`` in ``colour`` (float RGB [3]) with its pattern and its fixed-tone parts onto a float
    [side, side, 3] canvas, in place (the scene renderer and the layout sketch both draw things this way)."""
    mask = draw_mask(obj, side)
    if mask.getbbox() is None:                       # nothing of it on the canvas: no parts either
        return canvas
    _composite(canvas, mask, lambda box: colour * _pattern(obj.pattern, side, obj, box)[..., None])
    return draw_details(canvas, obj, side)


def draw_mask(obj: SceneObject, side: int) -> Image.Image:
    """An L-mode mask (side x side) of one object."""
    mask = Image.new("L", (side, side), 0)
    d = ImageDraw.Draw(mask)
    cx, cy, r = obj.x * side, obj.y * side, obj.radius * side
    a = math.radians(obj.rotation)
    ca, sa = math.cos(a), math.sin(a)

    def place(poly):
        return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in poly]

    if obj.shape not in PARTS:
        raise ValueError(f"shape={obj.shape!r} has no drawing; known: {sorted(PARTS)}")
    for poly in PARTS[obj.shape]:
        d.polygon(place(poly), fill=255)
    for poly in HOLES.get(obj.shape, []):
        d.polygon(place(poly), fill=0)
    return mask


def _pattern(kind: str, side: int, obj: SceneObject, box=None) -> np.ndarray:
    """float32 [h, w] brightness factor of an object's pattern (1 where plain) over ``box`` (x0, y0, x1, y1)
    of the side x side canvas (the whole canvas by default); the phase depends on canvas coordinates only."""
    x0, y0, x1, y1 = box or (0, 0, side, side)
    if kind == "plain":
        return np.ones((y1 - y0, x1 - x0), np.float32)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) / side
    period = obj.radius * 0.55
    if kind == "striped":
        ang = math.radians(obj.rotation + 60)
        t = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) / period * 2 * math.pi) > 0.2
        return np.where(t, 0.6, 1.0).astype(np.float32)
    if kind == "spotted":
        fx, fy = ((xx - obj.x) / period) % 1 - 0.5, ((yy - obj.y) / period) % 1 - 0.5
        return np.where(fx ** 2 + fy ** 2 < 0.07, 0.6, 1.0).astype(np.float32)
    raise ValueError(f"pattern={kind!r} is unknown")


def _band(yy: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((yy >= lo) & (yy < hi)).astype(np.float32)[..., None]


def _tone(base, rng, jitter: float = 14.0) -> np.ndarray:
    return np.clip(np.array(base, np.float32) + rng.uniform(-jitter, jitter, 3), 0, 255)


def background(kind: str, side: int, rng) -> np.ndarray:
    """float32 [side, side, 3]: the place ``kind`` (a horizon at a random height, textures, blotches)."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    h = float(rng.uniform(0.25, 0.45))                                   # horizon / wall line
    sky = _tone((150, 185, 215), rng) * (0.9 + 0.2 * yy[..., None])
    if kind == "park":
        grass = _tone((70, 120, 55), rng) * (0.9 + 0.15 * (np.sin(xx * 40 + yy * 9) > 0.6)[..., None])
        img = sky * _band(yy, 0, h) + grass * _band(yy, h, 2)
    elif kind == "beach":
        s = h + float(rng.uniform(0.1, 0.2))
        sea = _tone((50, 95, 150), rng) * (0.9 + 0.15 * (np.sin(xx * 30 + yy * 80) > 0.5)[..., None])
        sand = _tone((205, 185, 140), rng)
        img = sky * _band(yy, 0, h) + sea * _band(yy, h, s) + sand * _band(yy, s, 2)
    elif kind == "street":
        s = h + 0.12
        wall = _tone((115, 105, 100), rng) * (0.85 + 0.2 * ((np.floor(xx * 6) % 2) > 0)[..., None])
        walk = _tone((165, 165, 160), rng)
        road = _tone((70, 70, 75), rng)
        lane = ((np.abs(yy - (s + 1) / 2) < 0.012) & ((xx * 8) % 1 < 0.5)).astype(np.float32)[..., None]
        img = wall * _band(yy, 0, h) + walk * _band(yy, h, s) + (road * (1 - lane) + 230 * lane) * _band(yy, s, 2)
    elif kind == "room":
        wall = _tone(rng.choice([(190, 175, 150), (160, 175, 170), (180, 160, 165)]), rng)
        wood = _tone((125, 85, 50), rng) * (0.8 + 0.2 * np.sin(xx * 50 + 3 * np.sin(yy * 9)))[..., None]
        img = wall * _band(yy, 0, h + 0.15) + wood * _band(yy, h + 0.15, 2)
    elif kind == "snow":
        grey = _tone((175, 180, 190), rng)
        snow = _tone((225, 230, 240), rng, 8) * (0.92 + 0.08 * np.sin(xx * 12 + yy * 5))[..., None]
        img = grey * _band(yy, 0, h) + snow * _band(yy, h, 2)
    else:
        raise ValueError(f"background kind={kind!r} is unknown")
    low = Image.fromarray(rng.normal(0, 7, size=(4, 4)).astype(np.float32), mode="F")  # smooth blotches
    low = np.asarray(low.resize((side, side), Image.BILINEAR), dtype=np.float32)
    return (img + low[..., None]).astype(np.float32)


def render_scene(scene: Scene, cfg: WorldConfig) -> np.ndarray:
    """uint8 [H, W, 3] image of ``scene``."""
    rng = np.random.default_rng(scene.render_seed)
    side = cfg.image_size * cfg.supersample
    canvas = np.clip(background(scene.background, side, rng), 0, 255)
    draw_props(canvas, scene.props, side)
    for obj in scene.objects:
        colour = np.clip(np.array(RGB[obj.colour]) + rng.uniform(-18, 18, 3), 0, 255).astype(np.float32)
        paint_object(canvas, obj, side, colour)
    canvas = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
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
