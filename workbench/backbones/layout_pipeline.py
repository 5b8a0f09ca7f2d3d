"""Layout-guided synthesis, the image side: a diffusers img2img pipeline that starts from a flat sketch of
the caption's parsed layout (``workbench.sandbox.layout``), as LLM-grounded diffusion / GLIGEN ground SD.

``strength`` is the faithfulness knob: the sketch is noised to ``strength`` of the schedule and redrawn by
the text-conditioned UNet over ``strength * steps`` steps; ``strength = 1`` is pure text-to-image (the
synthesis engine then calls the text-to-image pipeline itself, so no trace of the sketch is left).

    pipe = LayoutSketchPipeline(**text_to_image_pipe.components)
    out = pipe(["a red cat left of a blue car"], strength=0.5, sketch_seeds=[7], output_type="np")
"""
from __future__ import annotations

from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from ..sandbox.layout import sketch_caption


class LayoutSketchPipeline(StableDiffusionImg2ImgPipeline):
    """``StableDiffusionImg2ImgPipeline`` whose init images are sketches of the prompts' parsed layouts."""

    def sketches(self, prompts: list, sketch_seeds: list, size: int) -> list:
        """One PIL sketch per prompt (layout drawn with its seed)."""
        if len(prompts) != len(sketch_seeds):
            raise ValueError(f"got {len(prompts)} prompts and {len(sketch_seeds)} sketch_seeds; give one seed per prompt.")
        return [Image.fromarray(sketch_caption(p, s, size)) for p, s in zip(prompts, sketch_seeds)]

    def __call__(self, prompt, strength: float, sketch_seeds: list, size: int = 64, **kwargs):
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength={strength!r} must be in (0, 1]: the share of the schedule that redraws the sketch.")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        return super().__call__(prompt=prompts, image=self.sketches(prompts, sketch_seeds, size), strength=strength,
                                **kwargs)
