"""Layout-guided synthesis, the text side: a sandbox caption's *text alone* -> a layout -> a flat sketch.

LLM-grounded diffusion and GLIGEN give Stable Diffusion a layout parsed from the prompt; the sandbox
does the same with a parser of its caption grammar. ``parse_caption`` reads the object phrases (count,
size, colour, pattern, thing), the relation stated between the first two and the place; it never sees the
scene behind the caption. ``layout`` places the parsed groups with the world's layout prior (the placement rule
any scene of the world follows, as an LLM knows where things usually go), ``render_sketch`` draws the
layout flat: exact things in their nominal colours, no rotation, on the named place (plain grey if none). The sketch is what the
sandbox SD redraws through img2img (``workbench.backbones.layout_pipeline``).

    parsed = parse_caption("two small red cats to the left of a blue car in a park, a kite nearby")
    objects = layout(parsed, seed=3)            # [SceneObject]
    props = layout_props(parsed, objects, 3)    # (Prop,): the named props on free cells
    sketch = render_sketch(objects, 64, props=props)   # uint8 [64, 64, 3]
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from .captions import (COLOUR_WORDS, COUNT_WORDS, PATTERN_WORDS, PLACE_WORDS, RELATION_WORDS, SCENE_WORDS,
                       SHAPE_WORDS, SIZE_WORDS, VAGUE_COUNT_WORDS, pluralise)
from .render import RGB, background, draw_props, paint_object
from .world import COLOURS, PROPS, SIZES, Group, place_groups, place_props

SKETCH_BACKGROUND = (128, 128, 128)
SKETCH_SUPERSAMPLE = 4


def _alternation(words) -> str:
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


_COUNT = {"a": 1, "an": 1, **{w: n for n, ws in COUNT_WORDS.items() for w in ws},
          **{w: 2 for w in VAGUE_COUNT_WORDS}}                  # a vague count is drawn as two
_SIZE = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
_COLOUR = {w: c for c, ws in COLOUR_WORDS.items() for w in ws}
_PATTERN = {w: p for p, ws in PATTERN_WORDS.items() for w in ws}
_PLACE = {w: p for p, ws in {**PLACE_WORDS}.items() for w in ws}
_PLACE.update({w: p for p, ws in SCENE_WORDS.items() for w in ws})
_SHAPE = {**{w: s for s, ws in SHAPE_WORDS.items() for w in ws},
          **{pluralise(w): s for s, ws in SHAPE_WORDS.items() for w in ws}}
_RELATION = {w: r for r, ws in RELATION_WORDS.items() for w in ws}
_GROUP_RE = re.compile(rf"\b({_alternation(_COUNT)})\s+(?:({_alternation(_SIZE)})\s+)?"
                       rf"(?:({_alternation(_COLOUR)})\s+)?(?:({_alternation(_PATTERN)})\s+)?({_alternation(_SHAPE)})\b")
_RELATION_RE = re.compile(rf"\b({_alternation(_RELATION)})\b")
_PLACE_RE = re.compile(rf"\b({_alternation(_PLACE)})\b")
_PROP_RE = re.compile(rf"\b({_alternation(PROPS)})\b")


@dataclass(frozen=True)
class ParsedGroup:
    shape: str
    colour: Optional[str]   # None when the caption does not say
    size: Optional[str]     # None when the caption does not say
    count: int
    pattern: Optional[str] = None


@dataclass(frozen=True)
class ParsedCaption:
    groups: tuple            # tuple[ParsedGroup], in the caption's order
    relation: Optional[str]  # relation of groups[0] to groups[1] as the caption states it, or None
    place: Optional[str] = None   # the place the caption names (BACKGROUNDS), or None
    props: tuple = ()             # the props the caption names (world.PROPS), in order, each once


def parse_caption(caption: str) -> ParsedCaption:
    """Object phrases, the relation between the first two and the place, from the caption's words only
    (generic words such as "an animal" name no category and are not drawn)."""
    text = caption.lower()
    matches = list(_GROUP_RE.finditer(text))
    if not matches:
        raise ValueError(f"caption={caption!r} names no object the sandbox parser knows ('<count> [size] "
                         f"[colour] [pattern] <thing>', e.g. 'a red cat'); layout-guided synthesis needs "
                         f"sandbox captions.")
    groups = tuple(ParsedGroup(_SHAPE[m.group(5)], _COLOUR[m.group(3)] if m.group(3) else None,
                               _SIZE[m.group(2)] if m.group(2) else None, _COUNT[m.group(1)],
                               _PATTERN[m.group(4)] if m.group(4) else None) for m in matches[:4])
    relation = None
    if len(matches) >= 2:
        rel = _RELATION_RE.search(text, matches[0].end(), matches[1].start())
        relation = _RELATION[rel.group(1)] if rel else None
    place = _PLACE_RE.search(text)
    props = tuple(dict.fromkeys(m.group(1) for m in _PROP_RE.finditer(text)))
    return ParsedCaption(groups, relation, _PLACE[place.group(1)] if place else None, props)


def layout(parsed: ParsedCaption, seed: int, max_rotation: float = 0.0, tries: int = 50) -> list:
    """Place the parsed groups with the world's placement rule: ``[SceneObject]`` (unstated sizes and colours
    drawn at random, unstated patterns plain; later groups small when unsized, as the world's distractors)."""
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        groups = []
        for i, g in enumerate(parsed.groups):
            size = g.size or ("small" if i >= 2 else SIZES[int(rng.integers(len(SIZES)))])
            colour = g.colour or COLOURS[int(rng.integers(len(COLOURS)))]
            groups.append(Group(g.shape, colour, size, g.count, g.pattern or "plain"))
        objects = place_groups(rng, groups, parsed.relation, max_rotation)
        if objects is not None:
            return objects
    raise ValueError(f"could not place {parsed} in {tries} tries; it holds more objects than fit in one image.")


def layout_props(parsed: ParsedCaption, objects, seed: int) -> tuple:
    """The caption's props (``world.Prop``) on layout cells the objects leave free."""
    return place_props(parsed.props, objects, np.random.default_rng([seed, 17]))


def render_sketch(objects, size: int = 64, place: Optional[str] = None, props=()) -> np.ndarray:
    """uint8 [size, size, 3]: the objects flat in their nominal colours (with their patterns) and the props on
    the named place drawn without noise, or on plain grey (anti-aliased)."""
    side = size * SKETCH_SUPERSAMPLE
    if place is None:
        canvas = np.empty((side, side, 3), np.float32)
        canvas[:] = SKETCH_BACKGROUND
    else:
        canvas = np.clip(background(place, side, np.random.default_rng(0)), 0, 255)
    draw_props(canvas, props, side)
    for obj in objects:
        paint_object(canvas, obj, side, np.array(RGB[obj.colour], np.float32))
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    return np.asarray(img.resize((size, size), Image.BOX), dtype=np.uint8)


def sketch_caption(caption: str, seed: int, size: int = 64) -> np.ndarray:
    """The sketch of one caption's parsed layout, uint8 [size, size, 3]."""
    parsed = parse_caption(caption)
    objects = layout(parsed, seed)
    return render_sketch(objects, size, parsed.place, layout_props(parsed, objects, seed))
