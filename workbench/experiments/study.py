"""What notebooks 02-05 read, for the active profile: one object in front of the sandbox world and the paper
pipeline, so the same cells run on both.

    S = study.open()            # WORKBENCH_PROFILE: sandbox (default), paper_b32, paper_l14
    S.clip, S.synthesis_config(), S.training_captions(n), S.real_images("val", n), S.experiment(abl)

* **sandbox**: the procedural world; ``real_images`` are renders of held-out scenes (``scenes`` attached, so the
  sandbox-only analyses, the faithfulness profile and the exact object masks, can use them); ``experiment``
  is ``experiment.prepare_sandbox``.
* **paper_b32 / paper_l14**: ``pipeline.Pipeline`` on ``PipelineConfig.for_profile`` (the prepare layout, with
  the fields of the JSON file ``WORKBENCH_PIPELINE`` over it: local checkpoints, other data, smaller sets);
  ``real_images`` are the val set / the in-domain test set read from their files; ``experiment`` is
  ``Pipeline.prepare`` (synthesis, features, concepts, vocabulary, val) and ``run`` the whole pipeline.
"""
from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import Optional

from ..config import AblationConfig, FeatureConfig, PipelineConfig, SynthesisConfig, TrainConfig, check_choice, resolve
from ..config.core import PROFILES


class Study:
    """The active profile's backbones, data and stages. ``stages`` is every stage's config (a ``Profile``: the
    sandbox's, or the pipeline config's with its overrides); ``sandbox`` says whether the procedural world (and
    its exact labels) is there."""

    def __init__(self, profile: str, pipeline_cfg: Optional[PipelineConfig] = None, clip=None, progress: bool = True):
        check_choice("profile", profile, PROFILES)
        self.profile, self.progress = profile, progress
        self.sandbox = profile == "sandbox"
        self.pipeline_cfg = None if self.sandbox else (pipeline_cfg or PipelineConfig.for_profile(profile))
        self.stages = resolve("sandbox") if self.sandbox else self.pipeline_cfg.stages
        self._clip = clip

    def __repr__(self) -> str:
        where = "the procedural world" if self.sandbox else f"{self.pipeline_cfg.train_captions} -> " \
                                                           f"{self.pipeline_cfg.out_dir}"
        return f"Study(profile={self.profile!r}, presets={self.stages.name!r}, {where})"

    @cached_property
    def pipeline(self):
        """The paper profile's ``Pipeline`` (sharing this study's CLIP)."""
        if self.sandbox:
            raise ValueError("profile='sandbox' has no paper pipeline; set WORKBENCH_PROFILE=paper_b32 or paper_l14.")
        from .pipeline import Pipeline
        return Pipeline(self.pipeline_cfg, clip=self._clip, progress=self.progress)

    @property
    def clip(self):
        """The profile's CLIP (loaded once; a paper profile's ``clip_pretrained`` override applies)."""
        if self._clip is None:
            from ..backbones.clip import load_clip
            cfg = self.stages.clip if self.sandbox else self.pipeline.clip_config()
            self._clip = load_clip(cfg)
        if not self.sandbox:
            self.pipeline.clip = self._clip
        return self._clip

    @property
    def meaningful(self) -> bool:
        """False on the tiny random components the tests run a paper profile with: there, the notebooks' asserts
        about meaning (real beats synthetic, the loss falls) cannot hold and are skipped; their shapes still are."""
        return self.stages.name != "tiny"

    @property
    def ablation(self) -> AblationConfig:
        """The runner's config: the sandbox's data sizes, methods and seeds, or a paper profile's (the pipeline's
        methods, seeds and stages; its data sizes are the pipeline config's, not these)."""
        if self.sandbox:
            return self.stages.ablation
        return self.pipeline.ablation_config(self.pipeline_cfg.n_train or 2)

    def synthesis_config(self) -> SynthesisConfig:
        return self.stages.synthesis if self.sandbox else self.pipeline.synthesis_config()

    def feature_config(self) -> FeatureConfig:
        return self.stages.features if self.sandbox else self.pipeline.feat

    def train_config(self, **overrides) -> TrainConfig:
        """The training preset (a paper profile: the pipeline's, so the pipeline reuses a notebook's run)."""
        base = self.stages.train if self.sandbox else self.pipeline.train_config()
        return replace(base, **overrides)

    def load_pipeline(self):
        """The text-to-image pipeline of ``synthesis_config`` (diffusers)."""
        from ..synthesis.engine import load_pipeline
        return load_pipeline(self.synthesis_config())

    # ------------------------------------------------------------------ data
    def training_captions(self, n: int) -> tuple:
        """``(captions, ids, scenes)`` of the first ``n`` training captions (``scenes`` None off the sandbox)."""
        if self.sandbox:
            from ..synthesis.engine import sandbox_captions
            return sandbox_captions("train", n)
        from ..corpora.readers import load_caption_corpus
        from ..utils.paths import repo_path
        caps, ids = load_caption_corpus(repo_path(self.pipeline_cfg.train_captions), self.pipeline_cfg.train_splits)
        return caps[:n], ids[:n], None

    def corpus(self, n: int) -> list:
        """Up to ``n`` training captions for the concept bank (sandbox: 5 per scene)."""
        if self.sandbox:
            from ..synthesis.engine import sandbox_captions
            return sandbox_captions("train", n, per_scene=5)[0]
        return self.training_captions(n)[0]

    def synthesise(self, pipe, captions: list, ids: list) -> list:
        """Synthesis-engine records of ``captions`` (resumable; pairs scored by this study's CLIP)."""
        from ..synthesis.engine import SynthesisEngine
        return SynthesisEngine(pipe, self.synthesis_config(), scorer=self.clip).run(captions, ids,
                                                                                    progress=self.progress)

    def synthetic_images(self, records: list):
        """uint8 [N, H, W, 3] of the records' images."""
        from ..synthesis.engine import load_images
        return load_images(self.synthesis_config().out_dir, records)

    def real_images(self, split: str, n: int):
        """Real images with references: sandbox renders of ``split`` (a ``SandboxSplit``) or, for a paper
        profile, the val set ("val") / the in-domain test set ("test") as ``data.RealImages``."""
        check_choice("split", split, ("val", "test"))
        if self.sandbox:
            from ..sandbox.splits import load_sandbox_split
            return load_sandbox_split(self.stages.world, split, n=n, progress=self.progress)
        from ..corpora.readers import RealImages, present_items
        c = self.pipeline_cfg
        ref = c.val if split == "val" else next((t for t in c.test_sets if t.corpus == c.train_corpus), c.test_sets[0])
        found = [(it, p) for it, p in present_items(ref.image_dir, ref.captions_file, "ReferenceSetConfig")
                 if it.captions][:n]
        return RealImages([p for _, p in found], [it.captions for it, _ in found], [it.image_id for it, _ in found])

    def experiment(self, abl: Optional[AblationConfig] = None):
        """Everything a method trains on: ``prepare_sandbox(abl)``, or the paper pipeline's ``prepare()``."""
        if self.sandbox:
            from .experiment import prepare_sandbox
            return prepare_sandbox(abl or self.stages.ablation, self.clip, progress=self.progress)
        self.clip
        return self.pipeline.prepare()

    def leaderboard(self, names, abl: Optional[AblationConfig] = None, seeds: Optional[tuple] = None) -> dict:
        """Every method of ``names`` (names, groups, "all") x seeds trained through the one runner and scored:
        sandbox: ``run_ablation`` on ``abl``'s experiment (seeds: ``abl.seeds``); paper: the pipeline with those
        methods (seeds: the pipeline config's). -> {"rows", "boards" ({protocol: leaderboard rows}), "experiment"
        (sandbox only; the paper pipeline's lives on disk)}."""
        from dataclasses import replace

        from .. import methods
        from .runner import leaderboard, run_ablation
        variants = methods.expand(list(names) if not isinstance(names, str) else names)
        if self.sandbox:
            from .experiment import prepare_sandbox
            cfg = replace(abl or self.stages.ablation, variants=variants,
                          **({"seeds": tuple(seeds)} if seeds else {}))
            exp = prepare_sandbox(cfg, self.clip, progress=self.progress)
            rows = run_ablation(cfg, self.clip, exp, progress=self.progress)
            return {"rows": rows, "boards": {"sandbox test": leaderboard(rows)}, "experiment": exp, "config": cfg}
        from .pipeline import Pipeline, protocol_boards
        real = [v for v in variants if methods.get(v).needs_scene_renders()]
        if real:                   # the oracle rows train on renders of the training captions: sandbox only
            print(f"skipped on {self.profile}: {', '.join(real)} (trained on real renders of the training captions, "
                  "which only the sandbox has)")
            variants = tuple(v for v in variants if v not in real)
        cfg = replace(self.pipeline_cfg, methods=variants, **({"seeds": tuple(seeds)} if seeds else {}))
        rows = Pipeline(cfg, clip=self.clip, progress=self.progress).run()
        return {"rows": rows, "boards": protocol_boards(rows), "experiment": None, "config": cfg}


def open(profile: Optional[str] = None, **kwargs) -> Study:  # noqa: A001 - study.open() reads as intended
    """The study of ``profile`` (default: ``WORKBENCH_PROFILE``, sandbox when unset): the notebooks' one door."""
    return Study(resolve(profile).name, **kwargs)
