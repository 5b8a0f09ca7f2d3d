"""Backbones: CLIP through open_clip (sandbox or paper), the sandbox CLIP's and text-to-image model's recipes, the
layout-guided diffusers pipeline, and the CLIP measurements they are calibrated on (modality gap, zero-shot)."""
