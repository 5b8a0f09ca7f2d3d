"""Test setup: offline, headless, and shared fixtures (tiny configs, the committed sandbox CLIP)."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"          # never touch the network; hub ids fail at once
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("WORKBENCH_SMOKE", None)
os.environ.pop("WORKBENCH_PROFILE", None)

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_world():
    from workbench.config import WorldConfig
    return WorldConfig.preset("tiny")


@pytest.fixture(scope="session")
def tiny_clip():
    import torch
    from workbench.backbones.clip import load_clip
    from workbench.config import ClipConfig
    torch.manual_seed(0)
    return load_clip(ClipConfig.preset("tiny"), device="cpu")


@pytest.fixture(scope="session")
def sandbox_clip():
    from workbench.backbones.clip import load_clip
    from workbench.config import ClipConfig
    return load_clip(ClipConfig.preset("sandbox"), device="cpu")


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, tiny_clip):
    """A tiny Stable Diffusion pipeline saved locally (the paper loading path, without a download)."""
    from workbench.config import DiffusionConfig
    from workbench.backbones.sandbox_sd import build_untrained_pipeline, save_pipeline
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
    from workbench.backbones.sandbox_sd import build_untrained_pipeline
    from workbench.experiments.experiment import prepare_sandbox
    tmp = tmp_path_factory.mktemp("methods")
    pipe = build_untrained_pipeline(DiffusionConfig.preset("tiny"), tiny_clip, tmp / "tok")
    cfg = replace(AblationConfig.preset("tiny"), n_train=16, n_val=4, n_test=4, n_test_unseen=2,
                  out_dir=str(tmp / "abl"))
    return prepare_sandbox(cfg, tiny_clip, pipe=pipe, progress=False)


@pytest.fixture(scope="session")
def paper_layout(tmp_path_factory, tiny_clip):
    """The prepare layout on a tmp root: the Karpathy fixtures of MSCOCO and Flickr30k, real COCO photos as val
    and test images (one test image of each corpus missing), a tiny random CLIP and text-to-image pipeline."""
    from workbench.backbones.clip import save_clip_weights
    from workbench.config import DiffusionConfig, karpathy_file
    from workbench.backbones.sandbox_sd import build_untrained_pipeline
    from workbench.corpora.prepare import write_split_lists
    root = tmp_path_factory.mktemp("pipe")
    for corpus, fixture in (("mscoco", "karpathy_dataset_coco_sample.json"),
                            ("flickr30k", "karpathy_dataset_flickr30k_sample.json")):
        (root / corpus / "karpathy").mkdir(parents=True)
        shutil.copy(FIX / fixture, root / corpus / "karpathy" / Path(karpathy_file(corpus)).name)
        write_split_lists(root / corpus / "karpathy" / Path(karpathy_file(corpus)).name, corpus)
    photos = sorted((FIX / "coco_images").iterdir())                       # 3 real COCO photos
    (root / "mscoco" / "val2014").mkdir()
    val_ids, test_ids = (244592, 10440, 10012), (391895, 60623)           # test 415746 stays missing
    for i, photo in zip(val_ids, photos):
        shutil.copy(photo, root / "mscoco" / "val2014" / f"COCO_val2014_{i:012d}.jpg")
    for i, photo in zip(test_ids, photos):
        shutil.copy(photo, root / "mscoco" / "val2014" / f"COCO_val2014_{i:012d}.jpg")
    (root / "flickr30k" / "images").mkdir()
    for name, photo in zip(("1007129816.jpg", "1009434119.jpg"), photos):   # 101362133.jpg stays missing
        shutil.copy(photo, root / "flickr30k" / "images" / name)
    save_clip_weights(tiny_clip, root / "clip.safetensors", half=False)
    build_untrained_pipeline(DiffusionConfig.preset("tiny"), tiny_clip, root / "tok").save_pretrained(root / "sd")
    return root


@pytest.fixture()
def other_captions():
    """``wrap(load)``: a split loader (``load_sandbox_split``) whose splits keep their renders under other
    captions (each caption + " with a kite"): a run keyed on its data must not take it for the same data."""
    import copy

    def wrap(load):
        def loader(*args, **kwargs):
            data = copy.copy(load(*args, **kwargs))
            data.captions = [[c + " with a kite" for c in cs] for cs in data.captions]
            return data
        return loader
    return wrap
