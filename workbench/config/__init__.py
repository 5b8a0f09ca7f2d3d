"""Typed configs for every stage, named presets, and the global switches (read in ``core.py`` only).

Each stage has a dataclass validated in ``__post_init__`` and built by ``preset(name)``, where the
names are ``tiny`` (unit tests), ``sandbox``, ``paper_b32`` and ``paper_l14`` (plus a few stage-specific
extras). ``from workbench import config as C`` gives all of them:

* ``core.py``        switches (``smoke``, ``scaled``, ``profile``, ...), ``check_*`` helpers, ``Preset``
* ``world.py``       WorldConfig, ClipConfig, RealDataConfig, ProtocolConfig
* ``layout.py``      the real-data folder layout, stated once (LAYOUT, reference_set, ReferenceSetConfig)
* ``generation.py``  PretrainConfig, DiffusionConfig, SynthesisConfig
* ``pipeline.py``    PipelineConfig
* ``stages.py``      Profile (every stage's config under one profile name) and ``resolve``: the one place a
  profile is resolved (``--profile`` / ``WORKBENCH_PROFILE``); code reads ``P.captioner``, ``P.train``, ...
* ``captioning.py``  GapConfig, FeatureConfig, ConceptConfig, PCMConfig, CaptionerConfig, TrainConfig, AblationConfig
"""
# flake8: noqa: F401 (re-exports)
from .core import (PRESETS, PROFILES, Preset, check_choice, check_range, clip_checkpoint_override,  # noqa: F401
                   SCALES, local_rank, profile, run_dir_override, scale, scale_note, scaled, smoke)
from .layout import LAYOUT, ReferenceSetConfig, karpathy_file, reference_set, split_file  # noqa: F401
from .world import (WorldConfig, ClipConfig, RealDataConfig, ProtocolConfig)  # noqa: F401
from .generation import (PretrainConfig, DiffusionConfig, SynthesisConfig)  # noqa: F401
from .captioning import (GapConfig, FeatureConfig, ConceptConfig, PCMConfig, CaptionerConfig, noam_peak,  # noqa: F401
                         TrainConfig, AblationConfig)
from .pipeline import PipelineConfig  # noqa: F401
from .stages import Profile, resolve  # noqa: F401
