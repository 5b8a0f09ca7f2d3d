"""Caption grammar for sandbox scenes: five annotator-like references that each say part of the scene.

A scene holds more than any one caption says (``world.py``), and its five references differ the way
MSCOCO annotators' do: each *annotator* picks what to mention (the main object nearly always, the second
often, distractors rarely), which attributes to state (colour usually, size and pattern sometimes), whether
to name the place, whether to state the relation and from which side, counts exact or vague ("a few"),
a category word or its synonym or a generic one ("an animal"), and a sentence frame. The probabilities
below are the sandbox's calibration of "how much a caption says of its image" (annotator agreement and
retrieval, README's calibration table); change them and re-measure with ``workbench calibrate``.

    captions = reference_captions(scene)        # 5 distinct strings, deterministic per scene
    prompt = canonical_prompt("red", "cat")     # "a photo of a red cat"
"""
from __future__ import annotations

import numpy as np

from .world import SUPERCATEGORY, Group, Scene

SHAPE_WORDS = {
    "cat": ["cat", "kitten", "kitty"], "dog": ["dog", "puppy", "doggy"], "bird": ["bird", "songbird"],
    "fish": ["fish", "goldfish"], "car": ["car", "automobile", "sedan"], "bus": ["bus", "coach"],
    "boat": ["boat", "sailboat"], "plane": ["plane", "airplane", "aircraft", "jet"],
    "chair": ["chair", "seat"], "table": ["table", "desk"], "lamp": ["lamp", "light"], "bed": ["bed", "cot"],
    "tree": ["tree"], "flower": ["flower", "blossom"], "cactus": ["cactus"], "leaf": ["leaf"],
}
POSES = {   # what a thing of each kind is doing: "a red car parked on the road"
    "animal": ["sitting", "standing", "resting"], "vehicle": ["parked", "standing"],
    "furniture": ["standing", "placed"], "plant": ["growing", "standing"],
}
SUPER_WORDS = {"animal": "animal", "vehicle": "vehicle", "furniture": "piece of furniture", "plant": "plant"}
PLURALS = {"fish": "fish", "goldfish": "goldfish", "bus": "buses", "coach": "coaches", "cactus": "cacti",
           "leaf": "leaves", "puppy": "puppies", "kitty": "kitties", "doggy": "doggies", "aircraft": "aircraft",
           "piece of furniture": "pieces of furniture"}
COLOUR_WORDS = {"purple": ["purple", "violet"], "white": ["white"], "red": ["red", "bright red"],
                "orange": ["orange"], "yellow": ["yellow"], "green": ["green"], "blue": ["blue", "dark blue"],
                "pink": ["pink"]}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "large": ["large", "big", "huge"]}
PATTERN_WORDS = {"striped": ["striped"], "spotted": ["spotted", "dotted"]}
COUNT_WORDS = {2: ["two", "a pair of"], 3: ["three"]}
VAGUE_COUNT_WORDS = ["some", "a few", "several", "a group of"]
RELATION_WORDS = {
    "left of": ["to the left of", "left of", "on the left of"],
    "right of": ["to the right of", "right of", "on the right of"],
    "above": ["above", "over"],
    "below": ["below", "under", "beneath"],
    "next to": ["next to", "beside", "near"],
}
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above",
           "next to": "next to"}
PLACE_WORDS = {   # "<objects> {place}"
    "park": ["in a park", "on the grass", "in the park", "on a lawn"],
    "beach": ["on a beach", "at the beach", "on the sand", "by the sea"],
    "street": ["on a street", "on the road", "in the street", "in a city street"],
    "room": ["in a room", "indoors", "inside a room", "on the floor of a room"],
    "snow": ["in the snow", "on a snowy field", "on the snow", "in a snowy landscape"],
}
SCENE_WORDS = {   # "{scene} with <objects>"
    "park": ["a park", "a grassy park"], "beach": ["a beach", "a sandy beach"],
    "street": ["a street", "a city street"], "room": ["a room", "an indoor room"],
    "snow": ["a snowy field", "a snowy landscape"],
}
BACKGROUND_WORDS = PLACE_WORDS   # older name: the background of a scene is its place

# How much an annotator says (see the module docstring).
P_MENTION = (0.92, 0.6, 0.3, 0.2)    # P(mention group i): main, second, distractors
P_COLOUR, P_SIZE, P_PATTERN = 0.7, 0.3, 0.5
P_PLACE, P_RELATION, P_VAGUE_COUNT, P_GENERIC, P_TAIL = 0.4, 0.6, 0.3, 0.12, 0.12
P_PROP = 0.66                         # P(mention each prop): the caption language's long tail
# {main}: a sentence; {p}: the props an annotator names
PROP_TEMPLATES = ["{main} with {p}", "{main} and {p}", "{main}, {p} nearby", "{main}, with {p} around",
                  "{main} beside {p}", "{main} near {p}", "{main}; {p} can also be seen"]

# {objs}: object phrases; {be}: is/are agreeing with the first phrase; {place}: where
LIST_TEMPLATES = [
    "{objs}", "a photo of {objs}", "an image of {objs}", "a picture of {objs}", "there {be} {objs}",
    "this image shows {objs}", "we can see {objs}", "a close-up of {objs}", "a snapshot showing {objs}",
    "an illustration of {objs}", "a picture with {objs}", "a scene containing {objs}", "a shot of {objs}",
    "a colorful image of {objs}", "the photo shows {objs}", "here we see {objs}", "{objs} {pose} there",
    "a few things including {objs}", "{objs} in view", "an everyday scene with {objs}", "someone took a photo of {objs}",
    "a candid shot of {objs}", "what looks like {objs}", "a blurry photo of {objs}", "a nice view of {objs}",
    "it is {objs}", "{objs} in the picture", "a wide shot of {objs}", "{objs} all in one frame",
    "a simple picture of {objs}", "an old photo of {objs}", "a clear picture of {objs}", "a funny picture of {objs}",
]
LIST_PLACE_TEMPLATES = [
    "{objs} {place}", "a photo of {objs} {place}", "{objs} can be seen {place}", "there {be} {objs} {place}",
    "a view of {objs} {place}", "{scene} with {objs}", "a picture of {scene} with {objs}",
    "{objs} {be} {place}", "an image of {scene} with {objs}", "{objs} {pose} {place}",
    "a photo of {objs} {pose} {place}", "there {be} {objs} {pose} {place}", "a shot of {scene} with {objs}",
    "{objs} out {place}", "a day {place} with {objs}", "{objs} seen {place}", "somewhere {place}, {objs}",
    "{place} there {be} {objs}", "{objs} hanging around {place}", "looking at {objs} {place}", "a view {place} of {objs}",
]
# {a} {rel} {b}: the two related groups; {be}: agrees with {a}
RELATION_TEMPLATES = [
    "{a} {rel} {b}", "{a} {be} {rel} {b}", "a photo of {a} {rel} {b}", "there {be} {a} {rel} {b}",
    "{a} placed {rel} {b}", "an image of {a} sitting {rel} {b}", "we see {a} {rel} {b}",
    "a picture showing {a} {rel} {b}", "{a} {be} positioned {rel} {b}", "a scene where {a} {be} {rel} {b}",
    "a drawing of {a} {rel} {b}", "{a} can be seen {rel} {b}",
]
# {main}: a sentence; {c}: further objects
MINOR_TEMPLATES = ["{main} and {c}", "{main}, and {c}", "{main}, with {c} nearby", "{main} as well as {c}",
                   "{main}; there is also {c}", "{main} plus {c}"]
TAILS = ["among other things", "and some other objects", "with more things around", "and other stuff"]

ALL_TEMPLATES = LIST_TEMPLATES + LIST_PLACE_TEMPLATES + RELATION_TEMPLATES + MINOR_TEMPLATES + TAILS


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def pluralise(word: str) -> str:
    return PLURALS.get(word, word + "s")


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def group_phrase(g: Group, rng, with_size: bool, with_colour: bool = True, with_pattern: bool = False,
                 vague_count: bool = False, generic: bool = False) -> str:
    """E.g. "a small red cat", "two big striped violet buses", "some animals"."""
    noun = SUPER_WORDS[SUPERCATEGORY[g.shape]] if generic else _pick(rng, SHAPE_WORDS[g.shape])
    words = [_pick(rng, SIZE_WORDS[g.size])] if with_size else []
    if with_colour:
        words.append(_pick(rng, COLOUR_WORDS[g.colour]))
    if with_pattern and g.pattern in PATTERN_WORDS:
        words.append(_pick(rng, PATTERN_WORDS[g.pattern]))
    if g.count == 1:
        body = " ".join(words + [noun])
        return f"{_article(body)} {body}"
    count = _pick(rng, VAGUE_COUNT_WORDS) if vague_count else _pick(rng, COUNT_WORDS[g.count])
    return " ".join([count] + words + [pluralise(noun)])


def _join(phrases) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _mentions(scene: Scene, rng) -> list:
    """Indices of the groups one annotator mentions (at least one; group 0 if the draw picks none)."""
    chosen = [i for i in range(len(scene.groups)) if rng.random() < P_MENTION[min(i, len(P_MENTION) - 1)]]
    return chosen or [0]


def _one_caption(scene: Scene, rng) -> str:
    chosen = _mentions(scene, rng)
    with_size, with_colour = rng.random() < P_SIZE, rng.random() < P_COLOUR
    with_pattern = rng.random() < P_PATTERN

    def phr(i: int, first: bool) -> str:
        return group_phrase(scene.groups[i], rng, with_size, with_colour, with_pattern,
                            vague_count=rng.random() < P_VAGUE_COUNT,
                            generic=(not first) and rng.random() < P_GENERIC)

    place = _pick(rng, PLACE_WORDS[scene.background]) if rng.random() < P_PLACE else None
    related = scene.relation is not None and 0 in chosen and 1 in chosen and rng.random() < P_RELATION
    if related:
        a, b, rel = 0, 1, scene.relation
        if rng.random() < 0.5:      # state the relation from the other side
            a, b, rel = 1, 0, INVERSE[rel]
        g_a = scene.groups[a]
        main = _pick(rng, RELATION_TEMPLATES).format(a=phr(a, True), b=phr(b, False),
                                                     rel=_pick(rng, RELATION_WORDS[rel]),
                                                     be="is" if g_a.count == 1 else "are")
        if place:
            main = f"{main} {place}"
        rest = [i for i in chosen if i not in (0, 1)]
        if rest:
            main = _pick(rng, MINOR_TEMPLATES).format(main=main, c=_join([phr(i, False) for i in rest]))
    else:
        order = [chosen[i] for i in rng.permutation(len(chosen))] if rng.random() < 0.3 else chosen
        phrases = [phr(i, k == 0) for k, i in enumerate(order)]
        be = "is" if scene.groups[order[0]].count == 1 and len(order) == 1 else "are"
        pose = _pick(rng, POSES[SUPERCATEGORY[scene.groups[order[0]].shape]])
        if place:
            main = _pick(rng, LIST_PLACE_TEMPLATES).format(objs=_join(phrases), be=be, place=place,
                                                          scene=_pick(rng, SCENE_WORDS[scene.background]),
                                                          pose=pose)
        else:
            main = _pick(rng, LIST_TEMPLATES).format(objs=_join(phrases), be=be, pose=pose)
    said = [p.kind for p in scene.props if rng.random() < P_PROP]
    if said:
        main = _pick(rng, PROP_TEMPLATES).format(main=main, p=_join([f"{_article(k)} {k}" for k in said]))
    if len(chosen) < len(scene.groups) and rng.random() < P_TAIL:
        main = f"{main} {_pick(rng, TAILS)}"
    return main


def reference_captions(scene: Scene, n: int = 5) -> list:
    """``n`` distinct reference captions, each from an independent "annotator"."""
    rng = np.random.default_rng(scene.render_seed + 7919)
    captions: list = []
    for _ in range(400):
        c = _one_caption(scene, rng)
        if c not in captions:
            captions.append(c)
        if len(captions) == n:
            return captions
    raise RuntimeError(f"could not make {n} distinct captions for scene {scene.scene_id}")


def canonical_prompt(colour: str, shape: str, template: str = "a photo of a {colour} {shape}") -> str:
    """The zero-shot prompt for one colour-category pair."""
    return template.format(colour=colour, shape=shape)


def _shape_pattern():
    import re
    words = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
    forms = {**{w: (s, False) for w, s in words.items()}, **{pluralise(w): (s, True) for w, s in words.items()}}
    alternation = "|".join(sorted(map(re.escape, forms), key=len, reverse=True))
    return re.compile(rf"\b({alternation})\b"), forms


_SHAPE_RE, _SHAPE_FORMS = _shape_pattern()


def swap_shape(caption: str, rng) -> str:
    """A hard negative: ``caption`` with one category word replaced by another category (plurality kept)."""
    matches = list(_SHAPE_RE.finditer(caption))
    if not matches:
        return caption
    m = matches[int(rng.integers(len(matches)))]
    shape, plural = _SHAPE_FORMS[m.group(1)]
    others = [s for s in SHAPE_WORDS if s != shape]
    new = others[int(rng.integers(len(others)))]
    return caption[:m.start()] + (pluralise(new) if plural else new) + caption[m.end():]


# ---- web alt-text: the sandbox CLIP's pretraining text ---------------------------------------------------
# Real CLIP learnt from web alt-text, not from MSCOCO's annotators: alt-text names whatever the uploader
# cared about (any object in the picture, not the one an annotator would call the subject), lists keywords,
# carries words about the photo rather than its content, and is sometimes about another picture. So the
# caption that real CLIP finds nearest to a photo is not the annotators' consensus, which is what makes
# retrieval a poor captioner on MSCOCO (CLIPRe: 0.15 of annotator agreement). A sandbox CLIP pretrained on the
# annotators' own captions embeds their consensus instead (nearest-caption retrieval reached 0.57 of agreement
# on world v3). ``alt_text`` is the sandbox's web text: same content words (so the CLIP reads annotator
# captions), another distribution over what is said and how.
ALT_PREFIXES = ["", "", "", "stock photo of ", "image of ", "photo: ", "illustration of ", "picture of ",
                "free photo ", "wallpaper with ", "cartoon ", "drawing of ", "closeup ", "my ", "cute ",
                "vector art ", "hd photo of ", "royalty free image of "]
ALT_SUFFIXES = ["", "", "", " stock photo", " isolated", " background", " wallpaper", " hd", " art",
                " for sale", " photography", " - image", " on white", " outdoors", " design", " pattern",
                " texture", " free download", " 4k", " jpg"]
P_ALT_MENTION = 0.55     # every group equally likely to be named: no annotator's subject
P_ALT_PLACE = 0.45
P_ALT_OFF = 0.1          # the text is about another picture (web pairs are noisy)
P_ALT_SENTENCE = 0.2     # a caption-like sentence (some web text reads like an annotator's)


def _alt_group(g: Group, rng) -> str:
    noun = _pick(rng, SHAPE_WORDS[g.shape])
    if g.count > 1:
        noun = pluralise(noun) if rng.random() < 0.7 else noun
    words = [noun]
    for p, w in ((0.6, _pick(rng, COLOUR_WORDS[g.colour])), (0.25, _pick(rng, SIZE_WORDS[g.size])),
                 (0.35, _pick(rng, PATTERN_WORDS[g.pattern]) if g.pattern in PATTERN_WORDS else None)):
        if w is not None and rng.random() < p:
            words.insert(0 if rng.random() < 0.7 else len(words), w)
    if g.count > 1 and rng.random() < 0.4:
        words.insert(0, _pick(rng, COUNT_WORDS[g.count]))
    return " ".join(words)


def alt_text(scene: Scene, rng, other: Scene | None = None) -> str:
    """One web alt-text for ``scene`` (or, with probability ``P_ALT_OFF``, for ``other``): keywords of a uniformly
    chosen subset of its groups and maybe its place, in a random order and joiner, with web boilerplate."""
    if other is not None and rng.random() < P_ALT_OFF:
        scene = other
    if rng.random() < P_ALT_SENTENCE:
        return _one_caption(scene, rng)
    groups = [g for g in scene.groups if rng.random() < P_ALT_MENTION]
    if not groups:
        groups = [scene.groups[int(rng.integers(len(scene.groups)))]]
    parts = [_alt_group(g, rng) for g in groups]
    parts = [parts[i] for i in rng.permutation(len(parts))]
    if rng.random() < P_ALT_PLACE:
        place = _pick(rng, PLACE_WORDS[scene.background]) if rng.random() < 0.5 else scene.background
        parts.insert(int(rng.integers(len(parts) + 1)), place)
    joiner = _pick(rng, [", ", " and ", " ", " | ", " with ", ", "])
    return (_pick(rng, ALT_PREFIXES) + joiner.join(parts) + _pick(rng, ALT_SUFFIXES)).strip()


def alt_texts(scenes: list, n: int = 5, seed: int = 0) -> list:
    """``n`` alt-texts per scene (list of lists), deterministic in ``seed``; off-topic texts borrow a neighbour."""
    out = []
    for i, s in enumerate(scenes):
        rng = np.random.default_rng([seed, s.render_seed])
        other = scenes[(i + 1 + int(rng.integers(max(1, len(scenes) - 1)))) % len(scenes)]
        out.append([alt_text(s, rng, other) for _ in range(n)])
    return out
