"""Layout-guided synthesis, the text side: a sandbox caption's *text alone* -> a layout -> a flat sketch.

LLM-grounded diffusion and GLIGEN give Stable Diffusion a layout parsed from the prompt; the sandbox
does the same with a parser of its caption grammar. ``parse_caption`` reads the object phrases (count,
size, colour, shape), the relation stated between the first two and nothing else; it never sees the scene
behind the caption. ``layout`` places the parsed groups with the world's layout prior (the placement rule
any scene of the world follows, as an LLM knows where things usually go), ``render_sketch`` draws the
layout flat: exact shapes in their nominal colours, no rotation, on plain grey. The sketch is what the
sandbox SD redraws through img2img (``workbench.layout_pipeline``).

    parsed = parse_caption("two small red circles to the left of a blue star")
    objects = layout(parsed, seed=3)            # [SceneObject]
    sketch = render_sketch(objects, 64)         # uint8 [64, 64, 3]
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from .captions import COLOUR_WORDS, COUNT_WORDS, RELATION_WORDS, SHAPE_WORDS, SIZE_WORDS, _plural
from .render import RGB, _draw_mask
from .world import SIZES, Group, _place

SKETCH_BACKGROUND = (128, 128, 128)
SKETCH_SUPERSAMPLE = 4


def _alternation(words) -> str:
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


_COUNT = {"a": 1, "an": 1, **{w: n for n, ws in COUNT_WORDS.items() for w in ws}}
_SIZE = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
_COLOUR = {w: c for c, ws in COLOUR_WORDS.items() for w in ws}
_SHAPE = {**{w: s for s, ws in SHAPE_WORDS.items() for w in ws},
          **{_plural(w): s for s, ws in SHAPE_WORDS.items() for w in ws}}
_RELATION = {w: r for r, ws in RELATION_WORDS.items() for w in ws}
_GROUP_RE = re.compile(rf"\b({_alternation(_COUNT)})\s+(?:({_alternation(_SIZE)})\s+)?"
                       rf"({_alternation(_COLOUR)})\s+({_alternation(_SHAPE)})\b")
_RELATION_RE = re.compile(rf"\b({_alternation(_RELATION)})\b")


@dataclass(frozen=True)
class ParsedGroup:
    shape: str
    colour: str
    size: Optional[str]     # None when the caption does not say
    count: int


@dataclass(frozen=True)
class ParsedCaption:
    groups: tuple            # tuple[ParsedGroup], in the caption's order
    relation: Optional[str]  # relation of groups[0] to groups[1] as the caption states it, or None


def parse_caption(caption: str) -> ParsedCaption:
    """Object phrases and the relation between the first two, from the caption's words only."""
    text = caption.lower()
    matches = list(_GROUP_RE.finditer(text))
    if not matches:
        raise ValueError(f"caption={caption!r} names no object the sandbox parser knows ('<count> [size] "
                         f"<colour> <shape>', e.g. 'a red circle'); layout-guided synthesis needs sandbox captions.")
    groups = tuple(ParsedGroup(_SHAPE[m.group(4)], _COLOUR[m.group(3)],
                               _SIZE[m.group(2)] if m.group(2) else None, _COUNT[m.group(1)]) for m in matches[:3])
    relation = None
    if len(matches) >= 2:
        rel = _RELATION_RE.search(text, matches[0].end(), matches[1].start())
        relation = _RELATION[rel.group(1)] if rel else None
    return ParsedCaption(groups, relation)


def layout(parsed: ParsedCaption, seed: int, max_rotation: float = 0.0, tries: int = 50) -> list:
    """Place the parsed groups with the world's placement rule: ``[SceneObject]`` (unstated sizes drawn at
    random, except an unsized third group: small, as the world makes minor objects)."""
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        groups = [Group(g.shape, g.colour, g.size or SIZES[int(rng.integers(len(SIZES)))], g.count)
                  for g in parsed.groups]
        if len(groups) == 3 and parsed.groups[2].size is None:
            groups[2] = Group(groups[2].shape, groups[2].colour, "small", groups[2].count)
        objects = _place(rng, groups, parsed.relation, max_rotation)
        if objects is not None:
            return objects
    raise ValueError(f"could not place {parsed} in {tries} tries; it holds more objects than fit in one image.")


def render_sketch(objects, size: int = 64) -> np.ndarray:
    """uint8 [size, size, 3]: the objects flat in their nominal colours on plain grey (anti-aliased)."""
    side = size * SKETCH_SUPERSAMPLE
    canvas = Image.new("RGB", (side, side), SKETCH_BACKGROUND)
    for obj in objects:
        canvas.paste(RGB[obj.colour], (0, 0), _draw_mask(obj, side))
    return np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.uint8)


def sketch_caption(caption: str, seed: int, size: int = 64) -> np.ndarray:
    """The flat sketch of one caption's parsed layout, uint8 [size, size, 3]."""
    return render_sketch(layout(parse_caption(caption), seed), size)
