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
