"""Caption grammar for sandbox scenes: templates, synonyms and five annotator-like references.

The five references of a scene differ the way human annotators' do: word order (group order, the
relation stated from either side), synonyms ("disc" for circle, "big" for large), optional size and
background mentions, and some omit the minor third object.

    captions = reference_captions(scene)        # 5 distinct strings, deterministic per scene
    prompt = canonical_prompt("red", "circle")  # "a photo of a red circle"
"""
from __future__ import annotations

import numpy as np

from .world import Group, Scene

SHAPE_WORDS = {
    "circle": ["circle", "disc", "disk"],
    "square": ["square", "block"],
    "triangle": ["triangle"],
    "star": ["star"],
    "heart": ["heart"],
    "cross": ["cross", "plus sign"],
    "diamond": ["diamond", "rhombus"],
    "crescent": ["crescent", "moon"],
}
PLURALS = {"cross": "crosses", "rhombus": "rhombuses", "plus sign": "plus signs"}
COLOUR_WORDS = {"purple": ["purple", "violet"], "white": ["white"], "red": ["red"], "orange": ["orange"],
                "yellow": ["yellow"], "green": ["green"], "blue": ["blue"], "pink": ["pink"]}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "large": ["large", "big"]}
COUNT_WORDS = {2: ["two", "a pair of"], 3: ["three"], 4: ["four"]}
RELATION_WORDS = {
    "left of": ["to the left of", "left of", "on the left of"],
    "right of": ["to the right of", "right of", "on the right of"],
    "above": ["above", "over"],
    "below": ["below", "under", "beneath"],
    "next to": ["next to", "beside", "near"],
}
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above",
           "next to": "next to"}
BACKGROUND_WORDS = {"plain": ["plain", "grey"], "checkered": ["checkered", "checkerboard"],
                    "striped": ["striped"], "dotted": ["dotted", "polka dot"], "wooden": ["wooden"]}

# {objs}: a list of object phrases; {be}: is/are agreeing with the first phrase; {bg}: background clause
LIST_TEMPLATES = [
    "{objs}", "a photo of {objs}", "an image of {objs}", "a picture of {objs}", "there {be} {objs}",
    "{objs} {bg}", "a photo of {objs} {bg}", "{objs} can be seen {bg}", "this image shows {objs}",
    "we can see {objs}", "a drawing of {objs}", "a rendering of {objs} {bg}", "a simple scene with {objs}",
    "a scene containing {objs}", "an illustration of {objs}", "a close-up of {objs}",
    "a view of {objs} {bg}", "a snapshot showing {objs}", "there {be} {objs} {bg}", "a picture with {objs}",
]
# {a} {rel} {b}: the two related groups; {be}: agrees with {a}
RELATION_TEMPLATES = [
    "{a} {rel} {b}", "{a} {be} {rel} {b}", "a photo of {a} {rel} {b}", "there {be} {a} {rel} {b}",
    "{a} placed {rel} {b}", "an image of {a} sitting {rel} {b}", "{a} {rel} {b} {bg}", "we see {a} {rel} {b}",
    "a picture showing {a} {rel} {b}", "{a} {be} positioned {rel} {b}", "a scene where {a} {be} {rel} {b}",
    "an illustration of {a} {rel} {b} {bg}", "a drawing of {a} {rel} {b}", "{a} can be seen {rel} {b}",
    "a photo showing {a} {rel} {b} {bg}",
]
# {main}: a relation sentence; {c}: the minor object
MINOR_TEMPLATES = ["{main} and {c}", "{main}, and {c}", "{main}, with {c} nearby", "{main} as well as {c}",
                   "{main}; there is also {c}", "{main} plus {c}"]
BACKGROUND_TEMPLATES = ["on a {w} background", "against a {w} backdrop", "over a {w} background",
                        "in front of a {w} background"]

ALL_TEMPLATES = LIST_TEMPLATES + RELATION_TEMPLATES + MINOR_TEMPLATES + BACKGROUND_TEMPLATES


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _plural(word: str) -> str:
    return PLURALS.get(word, word + "s")


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def group_phrase(g: Group, rng, with_size: bool) -> str:
    """E.g. "a small red circle", "two big violet diamonds"."""
    shape = _pick(rng, SHAPE_WORDS[g.shape])
    words = ([_pick(rng, SIZE_WORDS[g.size])] if with_size else []) + [_pick(rng, COLOUR_WORDS[g.colour])]
    if g.count == 1:
        body = " ".join(words + [shape])
        return f"{_article(body)} {body}"
    return " ".join([_pick(rng, COUNT_WORDS[g.count])] + words + [_plural(shape)])


def _join(phrases) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _one_caption(scene: Scene, rng, omit_minor: bool) -> str:
    with_size = rng.random() < 0.6
    bg = _pick(rng, BACKGROUND_TEMPLATES).format(w=_pick(rng, BACKGROUND_WORDS[scene.background]))
    groups = list(scene.groups)
    if scene.relation is None or rng.random() < 0.15:   # a plain list, in a shuffled order
        keep = groups[:2] if (omit_minor and len(groups) == 3) else groups
        order = rng.permutation(len(keep))
        phrases = [group_phrase(keep[i], rng, with_size) for i in order]
        be = "is" if keep[order[0]].count == 1 else "are"
        return _pick(rng, LIST_TEMPLATES).format(objs=_join(phrases), be=be, bg=bg)
    a, b, rel = groups[0], groups[1], scene.relation
    if rng.random() < 0.5:      # state the relation from the other side
        a, b, rel = b, a, INVERSE[rel]
    main = _pick(rng, RELATION_TEMPLATES).format(a=group_phrase(a, rng, with_size), b=group_phrase(b, rng, with_size),
                           rel=_pick(rng, RELATION_WORDS[rel]), be="is" if a.count == 1 else "are",
                           bg=bg)
    if len(groups) == 3 and not omit_minor:
        main = _pick(rng, MINOR_TEMPLATES).format(main=main, c=group_phrase(groups[2], rng, with_size))
    return main


def reference_captions(scene: Scene, n: int = 5) -> list:
    """``n`` distinct reference captions; with a minor object, two of the five leave it out."""
    rng = np.random.default_rng(scene.render_seed + 7919)
    captions: list = []
    for k in range(200):
        omit = len(scene.groups) == 3 and len(captions) in (3, 4)
        c = _one_caption(scene, rng, omit)
        if c not in captions:
            captions.append(c)
        if len(captions) == n:
            return captions
    raise RuntimeError(f"could not make {n} distinct captions for scene {scene.scene_id}")


def canonical_prompt(colour: str, shape: str, template: str = "a photo of a {colour} {shape}") -> str:
    """The zero-shot prompt for one colour-shape pair."""
    return template.format(colour=colour, shape=shape)


def _shape_pattern():
    import re
    words = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
    forms = {**{w: (s, False) for w, s in words.items()}, **{_plural(w): (s, True) for w, s in words.items()}}
    alternation = "|".join(sorted(map(re.escape, forms), key=len, reverse=True))
    return re.compile(rf"\b({alternation})\b"), forms


_SHAPE_RE, _SHAPE_FORMS = _shape_pattern()


def swap_shape(caption: str, rng) -> str:
    """A hard negative: ``caption`` with one shape word replaced by another shape (plurality kept)."""
    matches = list(_SHAPE_RE.finditer(caption))
    if not matches:
        return caption
    m = matches[int(rng.integers(len(matches)))]
    shape, plural = _SHAPE_FORMS[m.group(1)]
    others = [s for s in SHAPE_WORDS if s != shape]
    new = others[int(rng.integers(len(others)))]
    return caption[:m.start()] + (_plural(new) if plural else new) + caption[m.end():]
