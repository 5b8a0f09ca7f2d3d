"""Test setup: offline, headless, and shared fixtures (tiny configs, the committed sandbox CLIP)."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"          # never touch the network; hub ids fail at once
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("WORKBENCH_SMOKE", None)
os.environ.pop("WORKBENCH_PROFILE", None)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_world():
    from workbench.config import WorldConfig
    return WorldConfig.preset("tiny")


@pytest.fixture(scope="session")
def tiny_clip():
    import torch
    from workbench.backbones import load_clip
    from workbench.config import ClipConfig
    torch.manual_seed(0)
    return load_clip(ClipConfig.preset("tiny"), device="cpu")


@pytest.fixture(scope="session")
def sandbox_clip():
    from workbench.backbones import load_clip
    from workbench.config import ClipConfig
    return load_clip(ClipConfig.preset("sandbox"), device="cpu")


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, tiny_clip):
    """A tiny Stable Diffusion pipeline saved locally (the paper loading path, without a download)."""
    from workbench.config import DiffusionConfig
    from workbench.diffusion import build_untrained_pipeline, save_pipeline
    out = tmp_path_factory.mktemp("tiny_sd") / "pipe"
    pipe = build_untrained_pipeline(DiffusionConfig.preset("tiny"), tiny_clip, out.parent / "tok")
    save_pipeline(pipe, out, {"note": "untrained, for tests"})
    return out


@pytest.fixture(scope="session")
def tiny_exp(tiny_clip, tmp_path_factory):
    """A tiny sandbox experiment (16 training captions, an untrained tiny text-to-image pipeline) that every
    method trains and captions on in the method tests."""
    from dataclasses import replace

    from workbench.config import AblationConfig, DiffusionConfig
    from workbench.diffusion import build_untrained_pipeline
    from workbench.experiment import prepare_sandbox
    tmp = tmp_path_factory.mktemp("methods")
    pipe = build_untrained_pipeline(DiffusionConfig.preset("tiny"), tiny_clip, tmp / "tok")
    cfg = replace(AblationConfig.preset("tiny"), n_train=16, n_val=4, n_test=4, n_test_unseen=2,
                  out_dir=str(tmp / "abl"))
    return prepare_sandbox(cfg, tiny_clip, pipe=pipe, progress=False)
