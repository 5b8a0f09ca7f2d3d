"""The sandbox scene world: seeded procedural scenes of things in places, and their deterministic splits.

A scene is a *place* (park, beach, street, room, snowfield) holding 1-4 *groups* of things: a group is
1-3 objects of one category, colour, size and pattern ("two small striped red cats"). The 16 categories
are drawn procedurally (animals, vehicles, furniture, plants); objects can be plain, striped or spotted.
The first two groups stand in a spatial relation (left of, right of, above, below, next to); later groups
are *distractors* anywhere in the picture. As in a photograph, a scene holds more than any one caption
says: each of its five references (``captions.py``) mentions a different subset of what is there.
Beside its things a scene holds 2-4 small *props* (a ball, a kite, a bench, ...: ``PROPS``, 79 kinds with
long-tailed frequencies, each a fixed icon in fixed tones) that annotators mention now and then, as MSCOCO
annotators name the frisbee or the umbrella: they give the caption language its long tail of specific words
that no retrieved training caption is likely to share (README's calibration table).

Objects are centred on the cells of an 8x8 layout grid, aligned with the sandbox CLIP's 8x8 patch grid:
a ViT trained from scratch on a few minutes of CPU cannot learn shapes whose pixels fall at arbitrary
sub-patch offsets, while on the layout grid it learns them. Rotations, sizes, colours and textures vary.

Compositional generalisation: ``HELD_OUT_PAIRS`` (one colour per category, two categories per colour)
never appear in train, val or test; ``test_unseen`` scenes each contain at least one of them.

``Group.shape`` / ``SceneObject.shape`` hold the object's *category* (``SHAPES`` lists them): the field
keeps the name every consumer (masks, prompts, probes) reads.

    from workbench.config import Profile
    scenes = make_split(Profile("sandbox").world, "test")
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import WorldConfig, check_choice

CATEGORIES = {
    "animal": ("cat", "dog", "bird", "fish"),
    "vehicle": ("car", "bus", "boat", "plane"),
    "furniture": ("chair", "table", "lamp", "bed"),
    "plant": ("tree", "flower", "cactus", "leaf"),
}
SHAPES = tuple(c for cs in CATEGORIES.values() for c in cs)            # the 16 object categories
SUPERCATEGORY = {c: sup for sup, cs in CATEGORIES.items() for c in cs}
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
SIZES = ("small", "large")
PATTERNS = ("plain", "striped", "spotted")
RELATIONS = ("left of", "right of", "above", "below", "next to")
BACKGROUNDS = ("park", "beach", "street", "room", "snow")           # the place a scene is in
SPLITS = ("train", "val", "test", "test_unseen")

# One held-out colour per category, each colour held out with two categories, so every category is still
# seen with seven colours and every colour with fourteen categories in training text.
HELD_OUT_PAIRS = frozenset((COLOURS[(3 * i) % len(COLOURS)], s) for i, s in enumerate(SHAPES))

RADIUS = {"small": 0.14, "large": 0.2}    # object radius as a fraction of the image side
LAYOUT_GRID = 8     # object centres sit on the centres of an 8x8 layout grid (the CLIP patch grid)
MAX_GROUPS = 4
MAX_COUNT = 3       # objects in one group
N_GROUPS_P = (0.15, 0.35, 0.30, 0.20)     # P(1, 2, 3, 4 groups)
COUNT_P = (0.72, 0.18, 0.10)              # P(1, 2, 3 objects in a group)
PATTERN_P = (0.6, 0.2, 0.2)               # P(plain, striped, spotted)
# Props: small fixed-look things on free cells (kinds Zipf-distributed: the first are common, the last rare).
# No prop name contains a category, colour, size, pattern, place or relation word (the caption parser's).
PROPS = ("ball", "kite", "umbrella", "bench", "bicycle", "flag", "sign", "traffic cone", "box", "bottle",
         "cup", "book", "clock", "basket", "bucket", "ladder", "fence", "mailbox", "balloon", "frisbee",
         "skateboard", "suitcase", "backpack", "hat", "shoe", "pot", "vase", "bowl", "guitar", "drum",
         "bell", "tent", "barrel", "crate", "wheelbarrow", "shovel", "broom", "teapot", "candle", "anchor",
         "lantern", "trophy", "helmet", "rope", "ring", "key", "lock", "scarf", "glove", "sock",
         "boot", "pillow", "blanket", "mirror", "window", "door", "chimney", "wagon", "sled", "kettle",
         "pan", "fork", "spoon", "plate", "jar", "jug", "parcel", "tire", "wheel", "hammer",
         "axe", "rake", "hose", "bin", "cart", "statue", "fountain", "pole", "banner")
PROP_ZIPF = 0.5                            # P(kind k) proportional to 1 / (k + 1) ** PROP_ZIPF
N_PROPS_P = (0.0, 0.3, 0.4, 0.3)           # P(1, 2, 3, 4 props)
PROP_RADIUS = 0.08
WORLD_VERSION = 8   # bump when scene sampling changes, so caches keyed on it are rebuilt


@dataclass(frozen=True)
class SceneObject:
    shape: str        # category
    colour: str
    size: str
    x: float          # centre, fraction of width (0 = left)
    y: float          # centre, fraction of height (0 = top)
    rotation: float   # degrees
    group: int        # index into Scene.groups
    pattern: str = "plain"

    @property
    def radius(self) -> float:
        return RADIUS[self.size]


@dataclass(frozen=True)
class Group:
    shape: str        # category
    colour: str
    size: str
    count: int
    pattern: str = "plain"


@dataclass(frozen=True)
class Prop:
    kind: str         # PROPS
    x: float          # centre, fraction of width
    y: float


@dataclass(frozen=True)
class Scene:
    scene_id: str
    split: str
    groups: tuple             # tuple[Group]; groups[0] and groups[1] are related, later ones distractors
    objects: tuple            # tuple[SceneObject]
    background: str           # the place (BACKGROUNDS)
    relation: Optional[str]   # relation of groups[0] to groups[1], or None with a single group
    render_seed: int
    props: tuple = ()         # tuple[Prop]: small things beside the groups, named now and then

    @property
    def n_objects(self) -> int:
        return len(self.objects)

    def pairs(self) -> set:
        """The (colour, category) pairs present."""
        return {(g.colour, g.shape) for g in self.groups}

    def fingerprint(self) -> str:
        """Identity of the scene's content (everything but its id); equal fingerprints = same scene."""
        blob = repr((self.groups, self.objects, self.background, self.relation, self.render_seed, self.props))
        return hashlib.sha1(blob.encode()).hexdigest()


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    # SeedSequence with the split's index in SPLITS keeps streams of different splits independent.
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def _counts(rng, n_objects: Optional[int], max_objects: int) -> list:
    """Object counts of the groups: forced total ``n_objects`` or sampled (total <= ``max_objects``)."""
    while True:
        if n_objects is None:
            n_groups = int(rng.choice(MAX_GROUPS, p=N_GROUPS_P)) + 1
            counts = [int(rng.choice(MAX_COUNT, p=COUNT_P)) + 1 for _ in range(n_groups)]
            if sum(counts) <= max_objects:
                return counts
        else:
            lo = -(-n_objects // MAX_COUNT)
            n_groups = int(rng.integers(lo, min(MAX_GROUPS, n_objects) + 1))
            cuts = sorted(rng.choice(np.arange(1, n_objects), size=n_groups - 1, replace=False)) if n_groups > 1 else []
            counts = np.diff([0, *cuts, n_objects]).tolist()
            if max(counts) <= MAX_COUNT:
                return [int(c) for c in counts]


def _sample_groups(rng, counts: list, split: str) -> list:
    groups, used = [], set()
    for gi, count in enumerate(counts):
        for _ in range(100):
            pair = (COLOURS[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))])
            if pair not in used and (split == "test_unseen" or pair not in HELD_OUT_PAIRS):
                break
        used.add(pair)
        p_large = 0.65 if gi == 0 else (0.5 if gi == 1 else 0.25)      # distractors tend to be small
        size = "large" if rng.random() < p_large else "small"
        pattern = PATTERNS[int(rng.choice(len(PATTERNS), p=PATTERN_P))]
        groups.append(Group(shape=pair[1], colour=pair[0], size=size, count=int(count), pattern=pattern))
    if split == "test_unseen" and not any((g.colour, g.shape) in HELD_OUT_PAIRS for g in groups):
        k = int(rng.integers(min(2, len(groups))))          # a held-out pair among the main groups
        held = sorted(HELD_OUT_PAIRS - {(g.colour, g.shape) for g in groups})
        colour, shape = held[rng.integers(len(held))]
        g = groups[k]
        groups[k] = Group(shape=shape, colour=colour, size=g.size, count=g.count, pattern=g.pattern)
    return groups


def _regions(relation: Optional[str], rng) -> tuple:
    """Boxes (x0, x1, y0, y1) for group 0 and group 1 that realise ``relation``."""
    full = (0.0, 1.0, 0.0, 1.0)
    if relation is None:
        return full, full
    if relation in ("left of", "right of"):
        a, b = (0.0, 0.47, 0.0, 1.0), (0.53, 1.0, 0.0, 1.0)
        return (a, b) if relation == "left of" else (b, a)
    if relation in ("above", "below"):
        a, b = (0.0, 1.0, 0.0, 0.47), (0.0, 1.0, 0.53, 1.0)
        return (a, b) if relation == "above" else (b, a)
    # next to: side by side on a shared horizontal band
    y0 = float(rng.uniform(0.0, 0.35))
    a, b = (0.0, 0.5, y0, y0 + 0.65), (0.5, 1.0, y0, y0 + 0.65)
    return (a, b) if rng.random() < 0.5 else (b, a)


def _cells(lo: float, hi: float, r: float) -> np.ndarray:
    """Layout-grid centres c with lo + r <= c <= hi - r (a 0.03 tolerance lets objects touch the edge)."""
    c = (np.arange(LAYOUT_GRID) + 0.5) / LAYOUT_GRID
    return c[(c >= lo + r - 0.03) & (c <= hi - r + 0.03)]


def place_groups(rng, groups, relation, max_rot) -> Optional[list]:
    """Objects of ``groups`` on the layout grid, groups 0 and 1 realising ``relation``; None if they do not fit."""
    regions = _regions(relation, rng)
    objects = []
    for gi, g in enumerate(groups):
        box = regions[gi] if gi < 2 else (0.0, 1.0, 0.0, 1.0)
        r = RADIUS[g.size]
        xs, ys = _cells(box[0], box[1], r), _cells(box[2], box[3], r)
        if not len(xs) or not len(ys):
            return None
        for _ in range(g.count):
            for _attempt in range(60):
                x, y = float(xs[rng.integers(len(xs))]), float(ys[rng.integers(len(ys))])
                if all((x - o.x) ** 2 + (y - o.y) ** 2 > (r + o.radius + 0.01) ** 2 for o in objects):
                    break
            else:
                return None
            objects.append(SceneObject(g.shape, g.colour, g.size, x, y,
                                       round(float(rng.uniform(-max_rot, max_rot)), 2), gi,
                                       getattr(g, "pattern", "plain")))
    return objects


def place_props(kinds, objects, rng) -> tuple:
    """``Prop``s of ``kinds`` on free layout cells (not touching any object nor each other); fewer if full."""
    c = _cells(0.0, 1.0, PROP_RADIUS)
    free = [(x, y) for x in c for y in c
            if all((x - o.x) ** 2 + (y - o.y) ** 2 > (PROP_RADIUS + o.radius) ** 2 for o in objects)]
    out = []
    for kind in kinds:
        free = [(x, y) for x, y in free if all((x - q.x) ** 2 + (y - q.y) ** 2 > (2 * PROP_RADIUS) ** 2 for q in out)]
        if not free:
            break
        x, y = free[int(rng.integers(len(free)))]
        out.append(Prop(kind, float(x), float(y)))
    return tuple(out)


def _props(objects, render_seed: int) -> tuple:
    """1-3 props of Zipf-distributed kinds; drawn from their own stream so the rest of a scene is what it was
    before props existed."""
    rng = np.random.default_rng([render_seed, 17])
    p = 1.0 / np.arange(1, len(PROPS) + 1) ** PROP_ZIPF
    k = int(rng.choice(len(N_PROPS_P), p=N_PROPS_P)) + 1
    kinds = rng.choice(len(PROPS), size=k, replace=False, p=p / p.sum())
    return place_props([PROPS[int(i)] for i in kinds], objects, rng)


def make_scene(cfg: WorldConfig, split: str, index: int, n_objects: Optional[int] = None) -> Scene:
    """Scene ``index`` of ``split``; ``n_objects`` forces the object count (else sampled, at most
    ``cfg.max_objects``)."""
    check_choice("split", split, SPLITS)
    if n_objects is not None and not 1 <= n_objects <= cfg.max_objects:
        raise ValueError(f"n_objects={n_objects!r} must be between 1 and max_objects={cfg.max_objects} "
                         f"(or None for random).")
    rng = _rng(cfg.seed, split, index if n_objects is None else 1_000_000 * n_objects + index)
    while True:  # rejection: resample until the objects fit
        counts = _counts(rng, n_objects, cfg.max_objects)
        if n_objects is None and sum(counts) < cfg.min_objects:
            continue
        groups = _sample_groups(rng, counts, split)
        relation = RELATIONS[rng.integers(len(RELATIONS))] if len(groups) >= 2 else None
        objects = place_groups(rng, groups, relation, cfg.max_rotation_deg)
        if objects is not None:
            break
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    tag = "" if n_objects is None else f"n{n_objects}-"
    seed = int(rng.integers(2**31 - 1))
    return Scene(scene_id=f"{split}-{tag}{index:06d}", split=split, groups=tuple(groups),
                 objects=tuple(objects), background=background, relation=relation,
                 render_seed=seed, props=_props(objects, seed))


def make_split(cfg: WorldConfig, split: str, n: Optional[int] = None, n_objects: Optional[int] = None) -> list:
    """The first ``n`` scenes of ``split`` (default: the config's split size)."""
    n = cfg.split_size(split) if n is None else n
    if n < 0:
        raise ValueError(f"n={n!r} must be >= 0.")
    return [make_scene(cfg, split, i, n_objects) for i in range(n)]
