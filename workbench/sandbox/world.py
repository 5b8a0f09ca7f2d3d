"""The sandbox scene world: seeded procedural scenes and their deterministic splits.

A scene holds 1-4 objects arranged in 1-3 *groups* (same shape, colour and size; a group of two
red circles is counted "two red circles"). With two or more groups the first two stand in a spatial
relation (left of, right of, above, below, next to); a third group is a *minor* object some captions
leave out. Every scene is a pure function of ``(world seed, split, index)``.

Objects are centred on the cells of an 8x8 layout grid, aligned with the sandbox CLIP's 8x8 patch
grid: a ViT trained from scratch on a few minutes of CPU cannot learn shapes whose pixels fall at
arbitrary sub-patch offsets (a supervised probe stays near 40 % shape accuracy), while on the layout
grid it learns them quickly. Rotations, sizes, colours and textures still vary.

Compositional generalisation: ``HELD_OUT_PAIRS`` (one colour-shape pair per colour and per shape)
never appear in train, val or test; ``test_unseen`` scenes each contain at least one of them.

    from workbench.config import WorldConfig
    scenes = make_split(WorldConfig.preset("sandbox"), "test")
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import WorldConfig, check_choice

SHAPES = ("circle", "square", "triangle", "star", "heart", "cross", "diamond", "crescent")
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below", "next to")
BACKGROUNDS = ("plain", "checkered", "striped", "dotted", "wooden")
SPLITS = ("train", "val", "test", "test_unseen")

# One held-out pair per colour and per shape (a Latin diagonal), so every colour and every shape is
# still seen with seven partners in training text.
HELD_OUT_PAIRS = frozenset(zip(COLOURS, ("crescent", "circle", "heart", "star", "triangle", "square",
                                         "cross", "diamond")))

RADIUS = {"small": 0.12, "large": 0.20}   # object radius as a fraction of the image side
LAYOUT_GRID = 8     # object centres sit on the centres of an 8x8 layout grid (the CLIP patch grid)
WORLD_VERSION = 2   # bump when scene sampling changes, so caches keyed on it are rebuilt


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    x: float          # centre, fraction of width (0 = left)
    y: float          # centre, fraction of height (0 = top)
    rotation: float   # degrees
    group: int        # index into Scene.groups

    @property
    def radius(self) -> float:
        return RADIUS[self.size]


@dataclass(frozen=True)
class Group:
    shape: str
    colour: str
    size: str
    count: int


@dataclass(frozen=True)
class Scene:
    scene_id: str
    split: str
    groups: tuple             # tuple[Group]
    objects: tuple            # tuple[SceneObject]
    background: str
    relation: Optional[str]   # relation of groups[0] to groups[1], or None with a single group
    render_seed: int

    @property
    def n_objects(self) -> int:
        return len(self.objects)

    def pairs(self) -> set:
        """The (colour, shape) pairs present."""
        return {(g.colour, g.shape) for g in self.groups}

    def fingerprint(self) -> str:
        """Identity of the scene's content (everything but its id); equal fingerprints = same scene."""
        blob = repr((self.groups, self.objects, self.background, self.relation, self.render_seed))
        return hashlib.sha1(blob.encode()).hexdigest()


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    # SeedSequence with the split's index in SPLITS keeps streams of different splits independent.
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def _sample_groups(rng, n_objects: int, split: str) -> list:
    n_groups = int(rng.integers(1, min(3, n_objects) + 1))
    # split n_objects into n_groups positive counts
    cuts = sorted(rng.choice(np.arange(1, n_objects), size=n_groups - 1, replace=False)) if n_groups > 1 else []
    counts = np.diff([0, *cuts, n_objects]).tolist()
    groups, used = [], set()
    for count in counts:
        for _ in range(100):
            pair = (COLOURS[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))])
            if pair not in used and (split == "test_unseen" or pair not in HELD_OUT_PAIRS):
                break
        used.add(pair)
        groups.append(Group(shape=pair[1], colour=pair[0], size=SIZES[rng.integers(2)], count=int(count)))
    if split == "test_unseen" and not any((g.colour, g.shape) in HELD_OUT_PAIRS for g in groups):
        k = int(rng.integers(len(groups)))
        held = sorted(HELD_OUT_PAIRS - {(g.colour, g.shape) for g in groups})
        colour, shape = held[rng.integers(len(held))]
        groups[k] = Group(shape=shape, colour=colour, size=groups[k].size, count=groups[k].count)
    if len(groups) == 3:   # the minor (third) group is a single small object
        groups[2] = Group(groups[2].shape, groups[2].colour, "small", 1)
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


def _place(rng, groups, relation, max_rot) -> Optional[list]:
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
                if all((x - o.x) ** 2 + (y - o.y) ** 2 > (r + o.radius + 0.02) ** 2 for o in objects):
                    break
            else:
                return None
            objects.append(SceneObject(g.shape, g.colour, g.size, x, y,
                                       round(float(rng.uniform(-max_rot, max_rot)), 2), gi))
    return objects


def make_scene(cfg: WorldConfig, split: str, index: int, n_objects: Optional[int] = None) -> Scene:
    """Scene ``index`` of ``split``; ``n_objects`` forces the object count (else 1-4 uniformly)."""
    check_choice("split", split, SPLITS)
    if n_objects is not None and not 1 <= n_objects <= 4:
        raise ValueError(f"n_objects={n_objects!r} must be between 1 and 4 (or None for random).")
    rng = _rng(cfg.seed, split, index if n_objects is None else 1_000_000 * n_objects + index)
    while True:  # rejection: resample until the objects fit (rare)
        n = n_objects or int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        groups = _sample_groups(rng, n, split)
        relation = RELATIONS[rng.integers(len(RELATIONS))] if len(groups) >= 2 else None
        objects = _place(rng, groups, relation, cfg.max_rotation_deg)
        if objects is not None:
            break
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    tag = "" if n_objects is None else f"n{n_objects}-"
    return Scene(scene_id=f"{split}-{tag}{index:06d}", split=split, groups=tuple(groups),
                 objects=tuple(objects), background=background, relation=relation,
                 render_seed=int(rng.integers(2**31 - 1)))


def make_split(cfg: WorldConfig, split: str, n: Optional[int] = None, n_objects: Optional[int] = None) -> list:
    """The first ``n`` scenes of ``split`` (default: the config's split size)."""
    n = cfg.split_size(split) if n is None else n
    if n < 0:
        raise ValueError(f"n={n!r} must be >= 0.")
    return [make_scene(cfg, split, i, n_objects) for i in range(n)]
