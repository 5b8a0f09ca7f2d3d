"""The procedural sandbox world: scenes, captions and the renderer."""
from .captions import ALL_TEMPLATES, canonical_prompt, reference_captions
from .render import render_scene, render_scenes
from .world import (BACKGROUNDS, COLOURS, HELD_OUT_PAIRS, RELATIONS, SHAPES, SIZES, SPLITS, Scene,
                    SceneObject, make_scene, make_split)

__all__ = ["ALL_TEMPLATES", "BACKGROUNDS", "COLOURS", "HELD_OUT_PAIRS", "RELATIONS", "SHAPES", "SIZES",
           "SPLITS", "Scene", "SceneObject", "canonical_prompt", "make_scene", "make_split",
           "reference_captions", "render_scene", "render_scenes"]
