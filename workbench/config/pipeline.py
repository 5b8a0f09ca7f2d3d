"""The end-to-end pipeline's config (``workbench.experiments.pipeline``): which corpus trains, which sets test, where each
stage reads and writes, and which presets the stages use."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .core import PRESETS, Preset, check_choice, check_range
from .stages import Profile, stage_field
from .layout import LAYOUT, TRAIN_CORPORA, ReferenceSetConfig, karpathy_file, reference_set


def json_safe(value):
    """Tuples as lists, recursively (a config dict as JSON writes it)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class PipelineConfig(Preset):
    """data -> synthesis -> features -> concepts -> vocabulary -> training -> in/cross-domain evaluation.

    ``profile`` names the presets of every stage (``stages``: the resolved ``Profile``, ``overrides`` applied);
    ``train_captions`` is any caption corpus ``data.load_caption_corpus`` reads (its ``train_splits`` for a Karpathy file); the checkpoint is picked on
    ``val`` (real images, never a test set); every set in ``test_sets`` is scored, in-domain when its corpus is
    ``train_corpus``. ``clip_pretrained`` / ``synthesis_model`` override the presets' weights (a local file or
    folder, e.g. a mirror of the hub's). ``n_train`` / ``n_val`` / ``max_test_images`` cut the sets (None: all)."""
    profile: str = "paper_b32"
    train_corpus: str = "mscoco"
    train_captions: str = karpathy_file("mscoco")
    train_splits: Optional[tuple] = None   # Karpathy splits of the text; None: the file format's default
                                           # (dataset_*.json: train + restval; lists, COCO json, .txt: all)
    val: ReferenceSetConfig = reference_set("mscoco", "val")
    test_sets: tuple = (reference_set("mscoco"), reference_set("flickr30k"))
    n_train: Optional[int] = None
    n_val: Optional[int] = 500
    max_test_images: Optional[int] = None
    vocab_min_count: int = 5
    beam: int = 3
    on_unreadable: str = "skip"            # a test image that does not decode: "skip" (named, counted) or "fail"
    seed: int = 0
    clip_pretrained: Optional[str] = None
    synthesis_model: Optional[str] = None
    out_dir: str = "runs/pipeline/paper_b32-mscoco"
    overrides: tuple = ()                  # (("train.epochs", 3), ...): stage-config fields over the presets
                                           # (``--set`` and the stage flags; ``stages.SETTABLE``)
    methods: tuple = ("pcm-net",)          # registered methods (names, groups, "all"; ``workbench.methods``)
    seeds: tuple = ()                      # () -> (seed,)
    unpaired_images: Optional[str] = None  # a folder of real images whose captions are never used (CMSA's RL,
                                           # Unsupervised-ClipCap's mean alignment); None: those methods refuse
    n_unpaired: Optional[int] = None       # first N of them (sorted names; None: all)
    synthetic_images: Optional[str] = None # an existing synthetic set instead of synthesis (``synthetic_import``)
    synthetic_index: Optional[str] = None  # its JSON / CSV index: caption id -> file relative to the folder

    def __post_init__(self):
        check_choice("profile", self.profile, PRESETS)
        if not self.test_sets:
            raise ValueError("test_sets is empty; give at least one ReferenceSetConfig(corpus, image_dir, captions_file).")
        for name in ("n_train", "n_val", "max_test_images"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 1)
        check_range("vocab_min_count", self.vocab_min_count, 1)
        check_range("beam", self.beam, 1)
        check_choice("on_unreadable", self.on_unreadable, ("skip", "fail"))
        for key, _ in self.overrides:
            stage_field(key)                                        # refuses an unknown stage or field
        if not self.methods:
            raise ValueError("methods is empty; give at least one registered method, e.g. ('pcm-net',).")
        if self.n_unpaired is not None:
            check_range("n_unpaired", self.n_unpaired, 2)
        if (self.synthetic_images is None) != (self.synthetic_index is None):
            raise ValueError(f"synthetic_images={self.synthetic_images!r} and synthetic_index={self.synthetic_index!r}"
                             ": give both (the folder and its caption id -> file index) or neither.")

    def run_seeds(self) -> tuple:
        return tuple(self.seeds) or (self.seed,)

    @property
    def stages(self) -> Profile:
        """Every stage's config: the ``profile``'s presets with this config's ``overrides`` applied."""
        return Profile(self.profile, self.overrides)

    @staticmethod
    def for_corpora(profile: str, train: str = "mscoco", test=("mscoco", "flickr30k"), root=None,
                    **overrides) -> "PipelineConfig":
        """The config of ``--profile profile --train train --test test...`` on the prepare layout (under ``root``
        instead of ``data/`` when given: ``--root``)."""
        check_choice("train corpus", train, TRAIN_CORPORA)
        for name in test:
            check_choice("test corpus", name, tuple(LAYOUT))
        return PipelineConfig(**{"profile": profile, "train_corpus": train,
                                 "train_captions": karpathy_file(train, root),
                                 "val": reference_set(train, "val", root),
                                 "test_sets": tuple(reference_set(t, "test", root) for t in test),
                                 "out_dir": f"runs/pipeline/{profile}-{train}", **overrides})

    @staticmethod
    def for_profile(profile: str) -> "PipelineConfig":
        """A paper profile's pipeline (MSCOCO text, MSCOCO + Flickr30k test) with the fields of the JSON file
        ``WORKBENCH_PIPELINE`` names over it: what notebooks 02-05 run under ``WORKBENCH_PROFILE=paper_*``."""
        import json
        import os

        from .core import pipeline_override_file
        check_choice("profile", profile, ("paper_b32", "paper_l14"))
        path = pipeline_override_file()
        if path is None:
            return PipelineConfig.preset(profile)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"WORKBENCH_PIPELINE={path!r} is not a file; point it at a JSON object of "
                                    "PipelineConfig fields, or unset it.")
        return PipelineConfig.from_dict({**PipelineConfig.preset(profile).to_dict(), **json.loads(open(path).read())})

    def to_dict(self) -> dict:
        """Plain JSON-able fields (``from_dict`` reads them back)."""
        from dataclasses import asdict
        return json_safe(asdict(self))

    @staticmethod
    def from_dict(values: dict) -> "PipelineConfig":
        from dataclasses import fields
        known = {f.name for f in fields(PipelineConfig)}
        unknown = sorted(set(values) - known - {"stages"})
        if unknown:
            raise ValueError(f"unknown PipelineConfig field(s) {unknown}; the fields are {sorted(known)}.")
        out = dict(values)
        if "stages" in out and "profile" not in out:     # the field's name in run states written before
            out["profile"] = out.pop("stages")
        if isinstance(out.get("val"), dict):
            out["val"] = ReferenceSetConfig(**out["val"])
        if "test_sets" in out:
            out["test_sets"] = tuple(ReferenceSetConfig(**t) if isinstance(t, dict) else t for t in out["test_sets"])
        for name in ("train_splits", "overrides", "methods", "seeds"):
            if out.get(name) is not None:
                out[name] = tuple(tuple(x) if isinstance(x, list) else x for x in out[name])
        return PipelineConfig(**out)

    @staticmethod
    def _preset_paper_b32():
        return PipelineConfig.for_corpora("paper_b32")

    @staticmethod
    def _preset_paper_l14():
        return PipelineConfig.for_corpora("paper_l14")
