"""The saved captioner: a save / load round trip gives the same captions; a mismatched checkpoint, format or CLIP
is named; a folder of real images is captioned through the CLIP the captioner expects."""
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from workbench.model.captioner import Captioner
from workbench.config import CaptionerConfig, PCMConfig
from workbench.model.decoding import generate
from workbench.model.saved import (caption_folder, check_clip, expected_clip, from_pretrained, load_weights,
                                   save_pretrained)
from workbench.model.vocab import Vocabulary

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture()
def saved(tiny_clip, tmp_path):
    vocab = Vocabulary.build(["a man riding a horse", "a plate of food on a table"], min_count=1)
    bank = F.normalize(tiny_clip.text_features(["man", "horse", "plate", "food"]), dim=-1)
    grid = tiny_clip.model.visual.grid_size[0] ** 2
    torch.manual_seed(0)
    model = Captioner(CaptionerConfig.preset("tiny"), len(vocab), tiny_clip.embed_dim,
                      tiny_clip.model.visual.transformer.width, grid, PCMConfig.preset("tiny", k=2), bank).eval()
    folder = save_pretrained(model, vocab, tmp_path / "cap", clip=tiny_clip, configs={"train": {"epochs": 3}})
    return model, vocab, folder


def test_round_trip_gives_the_same_captions(saved, tiny_clip):
    model, vocab, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    loaded, vocab2, info = from_pretrained(folder, clip=tiny_clip)
    assert vocab2.itos == vocab.itos and info["configs"] == {"train": {"epochs": 3}}
    assert expected_clip(info) == tiny_clip.cfg
    feats = tiny_clip.image_features([str(p) for p in sorted((FIX / "coco_images").iterdir())])
    args = (feats.global_, feats.tokens, feats.patches)
    assert generate(loaded, vocab2, *args, beam=2) == generate(model, vocab, *args, beam=2)
    caps = caption_folder(folder, FIX / "coco_images", beam=2, clip=tiny_clip, progress=False)
    assert list(caps) == ["000000010012.jpg", "000000010440.jpg", "000000244592.jpg"]
    assert list(caps.values()) == generate(model, vocab, *args, beam=2)


def test_an_unreadable_image_is_named_and_skipped_and_the_rest_captioned(saved, tiny_clip, tmp_path):
    import shutil
    _, _, folder = saved
    imgs = tmp_path / "imgs"
    shutil.copytree(FIX / "coco_images", imgs)
    broken = imgs / "000000010440.jpg"
    broken.write_bytes(broken.read_bytes()[:1500])                     # a truncated download
    with pytest.warns(UserWarning, match="000000010440.jpg"):
        caps = caption_folder(folder, imgs, beam=2, clip=tiny_clip, progress=False)
    assert list(caps) == ["000000010012.jpg", "000000244592.jpg"]


def test_mismatches_are_named(saved, tiny_clip, tmp_path):
    model, vocab, folder = saved
    other = Captioner(replace(CaptionerConfig.preset("tiny"), width=16), len(vocab), tiny_clip.embed_dim,
                      tiny_clip.model.visual.transformer.width, model.n_patches, PCMConfig.preset("tiny", k=2),
                      model.bank)
    with pytest.raises(ValueError, match=r"do not fit this Captioner: reshaped .*g_proj.weight: \[32, 32\] in the "
                                         r"file vs \[16, 32\] here.*\(53 reshaped, 0 missing, 0 unexpected\)"):
        load_weights(other, model.state_dict(), "best.pt")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "architecture": 1}))
    with pytest.raises(ValueError, match="architecture 1"):
        from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "format": "diffusers"}))
    with pytest.raises(ValueError, match="not a workbench captioner"):
        from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="folder="):
        from_pretrained(tmp_path)
    torch.manual_seed(1)
    from workbench.backbones.clip import load_clip
    stranger = load_clip(tiny_clip.cfg, device="cpu")                     # same config, other random weights
    with pytest.raises(ValueError, match="weights fingerprint"):
        check_clip(cfg, stranger)
    with pytest.raises(ValueError, match="vocab has"):
        save_pretrained(model, Vocabulary.build(["a b"], min_count=1), tmp_path / "x")
