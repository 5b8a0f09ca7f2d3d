"""The profile, resolved once: one object that gives every stage its config.

A profile name (``sandbox``, ``paper_b32``, ``paper_l14``; ``tiny`` in the unit tests) picks one preset of every
stage's config. ``resolve`` reads it once, from a ``--profile`` flag when a command has one, else from
``WORKBENCH_PROFILE`` (``core.profile``), and every stage reads its config off the returned ``Profile``:

    P = resolve()                      # or resolve(args.profile), Profile("tiny") in a test
    P.world, P.clip, P.synthesis, P.features, P.concepts, P.pcm, P.captioner, P.train, P.ablation

``overrides`` (``(("train.epochs", 3), ...)``: the pipeline's ``--set STAGE.FIELD=VALUE`` and stage flags) are
applied over the presets, checked against the stage's fields.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Optional

from .core import PRESETS, check_choice, preset_class, profile as env_profile

# stage name -> config class name (the class lives in one of world.py, generation.py, captioning.py, pipeline.py)
STAGES = {"world": "WorldConfig", "clip": "ClipConfig", "real": "RealDataConfig", "protocol": "ProtocolConfig",
          "pretrain": "PretrainConfig", "diffusion": "DiffusionConfig", "synthesis": "SynthesisConfig",
          "gap": "GapConfig", "features": "FeatureConfig", "concepts": "ConceptConfig", "pcm": "PCMConfig",
          "captioner": "CaptionerConfig", "train": "TrainConfig", "ablation": "AblationConfig",
          "pipeline": "PipelineConfig"}
# the stages a run can override field by field (``--set STAGE.FIELD=VALUE``): the model and data stages
SETTABLE = ("synthesis", "train", "concepts", "captioner", "pcm", "features", "clip")


def stage_class(name: str):
    """The config class of stage ``name`` (``STAGES``)."""
    check_choice("stage", name, tuple(STAGES))
    return preset_class(STAGES[name])


def stage_field(key: str) -> tuple:
    """``"train.epochs"`` -> ``("train", "epochs")``, refusing unknown stages and fields with the choices."""
    if not isinstance(key, str) or key.count(".") != 1:
        raise ValueError(f"--set {key!r}: write STAGE.FIELD=VALUE with STAGE one of {sorted(SETTABLE)}, "
                         "e.g. --set train.epochs=3.")
    stage, name = key.split(".")
    if stage not in SETTABLE:
        raise ValueError(f"--set {key!r}: unknown stage {stage!r}; choose one of {sorted(SETTABLE)}.")
    known = [f.name for f in fields(stage_class(stage))]
    if name not in known:
        raise ValueError(f"--set {key!r}: {STAGES[stage]} has no field {name!r}; its fields: {known}.")
    return stage, name


def parse_set(item: str) -> tuple:
    """``"train.epochs=3"`` -> ``("train.epochs", 3)``: the value parsed as JSON when it is (numbers, true/false,
    null, lists), else kept as text; the key checked (``stage_field``)."""
    if "=" not in item:
        raise ValueError(f"--set {item!r}: write STAGE.FIELD=VALUE, e.g. --set concepts.min_count=5.")
    key, raw = item.split("=", 1)
    stage_field(key.strip())
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Profile:
    """Every stage's config under one profile name, with ``overrides`` over the presets."""
    name: str = "sandbox"
    overrides: tuple = ()          # (("train.epochs", 3), ...)

    def __post_init__(self):
        check_choice("profile", self.name, PRESETS)
        for key, _ in self.overrides:
            stage_field(key)       # refuses an unknown stage or field

    def overrides_of(self, name: str) -> dict:
        """{field: value} of the overrides of stage ``name``."""
        return {field: v for (stage, field), v in ((stage_field(k), v) for k, v in self.overrides) if stage == name}

    def stage(self, name: str):
        """The profile's preset of stage ``name`` (``STAGES``) with the overrides of that stage applied."""
        cfg = stage_class(name).preset(self.name)
        values = self.overrides_of(name)
        return replace(cfg, **values) if values else cfg

    world = property(lambda self: self.stage("world"))
    clip = property(lambda self: self.stage("clip"))
    real = property(lambda self: self.stage("real"))
    protocol = property(lambda self: self.stage("protocol"))
    pretrain = property(lambda self: self.stage("pretrain"))
    diffusion = property(lambda self: self.stage("diffusion"))
    synthesis = property(lambda self: self.stage("synthesis"))
    gap = property(lambda self: self.stage("gap"))
    features = property(lambda self: self.stage("features"))
    concepts = property(lambda self: self.stage("concepts"))
    pcm = property(lambda self: self.stage("pcm"))
    captioner = property(lambda self: self.stage("captioner"))
    train = property(lambda self: self.stage("train"))
    ablation = property(lambda self: self.stage("ablation"))
    pipeline = property(lambda self: self.stage("pipeline"))


def resolve(name: Optional[str] = None, overrides: tuple = ()) -> Profile:
    """The one place a profile is resolved: ``name`` (a command's ``--profile`` / ``--preset``) when given, else
    ``WORKBENCH_PROFILE`` (default ``sandbox``)."""
    return Profile(name or env_profile(), tuple(overrides))
