"""Feature cache (sharded, memory-mapped, resumable) and the concept vocabulary."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from workbench.features.concepts import build_concept_bank, count_nouns, select_vocabulary
from workbench.config import ConceptConfig, FeatureConfig
from workbench.features.cache import FeatureStore, extract_image_features, extract_text_features


@pytest.fixture()
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(37, 32, 32, 3), dtype=np.uint8)


def _cfg(tmp_path):
    return replace(FeatureConfig.preset("tiny"), root=str(tmp_path), dtype="fp32")


def test_cache_matches_direct_encoding_and_reads_batches(tiny_clip, images, tmp_path):
    ids = [f"img{i}" for i in range(len(images))]
    store = extract_image_features(tiny_clip, images, ids, "set", _cfg(tmp_path), progress=False)
    assert len(store) == 37 and store.ids == ids and len(store.manifest["shards"]) == 3     # 16 + 16 + 5
    direct = tiny_clip.image_features(images)
    pick = [36, 0, 17, 17, 5]                       # across shards, repeated, unordered
    batch = store.get(pick)
    assert torch.allclose(batch["global"], direct.global_[pick], atol=1e-5)
    assert torch.allclose(batch["tokens"], direct.tokens[pick], atol=1e-5)
    assert torch.allclose(batch["patches"], direct.patches[pick], atol=1e-5)
    assert store[17]["patches"].shape == direct.patches.shape[1:]
    with pytest.raises(IndexError, match="indices"):
        store.get([37])
    with pytest.raises(KeyError, match="text"):
        store.get([0], keys=["text"])


def test_resume_redoes_only_missing_or_corrupt_shards(tiny_clip, images, tmp_path, monkeypatch):
    ids = [str(i) for i in range(len(images))]
    cfg = _cfg(tmp_path)
    store = extract_image_features(tiny_clip, images, ids, "set", cfg, progress=False)
    first = store.get(range(37))
    folder = tmp_path / "set"
    # a killed run: manifest says incomplete with one shard recorded, another shard's file corrupted
    man = json.loads((folder / "manifest.json").read_text())
    man["complete"], man["shards"] = False, man["shards"][:2]
    (folder / "manifest.json").write_text(json.dumps(man))
    np.save(folder / "shard_00001" / "global.npy", np.zeros((16, 4), np.float32))
    calls = []
    real = tiny_clip.encode_images
    monkeypatch.setattr(tiny_clip, "encode_images", lambda px: calls.append(len(px)) or real(px))
    with pytest.raises(RuntimeError, match="incomplete"):
        FeatureStore(folder)
    store = extract_image_features(tiny_clip, images, ids, "set", cfg, progress=False)
    assert sum(calls) == 16 + 5                      # shard 1 (corrupt) and shard 2 (unrecorded) only
    again = store.get(range(37))
    assert all(torch.allclose(first[k], again[k]) for k in first)


def test_manifest_refuses_another_image_set(tiny_clip, images, tmp_path):
    cfg = _cfg(tmp_path)
    extract_image_features(tiny_clip, images, [str(i) for i in range(37)], "set", cfg, progress=False)
    with pytest.raises(ValueError, match="source"):
        extract_image_features(tiny_clip, images, [f"x{i}" for i in range(37)], "set", cfg, progress=False)
    with pytest.raises(ValueError, match="unique"):
        extract_image_features(tiny_clip, images, ["a"] * 37, "other", cfg, progress=False)


def test_another_backbone_caches_beside_the_first(tiny_clip, images, tmp_path):
    """A retrained CLIP (other weights) under the same set name: its features go to ``<name>@<backbone>``; the first
    backbone's cache is kept and read back unchanged."""
    import copy
    ids, cfg = [str(i) for i in range(len(images))], _cfg(tmp_path)
    first = extract_image_features(tiny_clip, images, ids, "set", cfg, progress=False).get(range(8))
    other = copy.deepcopy(tiny_clip)
    with torch.no_grad():
        for p in other.model.visual.parameters():
            p.add_(0.01)
    second = extract_image_features(other, images, ids, "set", cfg, progress=False)
    assert second.folder.name.startswith("set@") and (tmp_path / "set" / "manifest.json").exists()
    assert not torch.allclose(second.get(range(8))["global"], first["global"])
    again = extract_image_features(tiny_clip, images, ids, "set", cfg, progress=False)
    assert again.folder == tmp_path / "set" and torch.equal(again.get(range(8))["global"], first["global"])


def test_text_cache(tiny_clip, tmp_path):
    texts = ["a red circle", "two blue stars", "a green heart on a plain background"]
    store = extract_text_features(tiny_clip, texts, ["a", "b", "c"], "caps", _cfg(tmp_path), progress=False)
    assert torch.allclose(store.all("text"), tiny_clip.text_features(texts), atol=1e-5)


def test_noun_vocabulary_on_real_coco_captions():
    from workbench.corpora.readers import load_captions
    from pathlib import Path
    items = load_captions(Path(__file__).parent / "fixtures" / "karpathy_mscoco_val_sample.json")
    counts = count_nouns([c for it in items for c in it.captions])
    words = [w for w, _ in select_vocabulary(counts, ConceptConfig(min_count=1, max_size=1000))]
    # plurals lemmatised; function words, verbs in context, colours and picture words left out
    assert "men" not in counts and "dogs" not in counts
    for word in ("a", "the", "is", "sitting", "white", "black", "photo", "picture", "it", "that"):
        assert word not in counts, word
    assert len(words) >= 10


def test_noun_rules_on_sentences():
    counts = count_nouns(["A man is sitting on a bench with two dogs.", "a red square and a blue circle",
                          "a red square.", "The image shows a white cat next to a stop sign."])
    assert {"man", "bench", "dog", "square", "circle", "cat", "sign"} <= set(counts)
    assert not {"sitting", "red", "blue", "white", "image", "show", "next", "a"} & set(counts)
    assert counts["square"] == 1          # "a red square and ..." is ambiguous and not counted
    # a plural with two noun lemmas takes the one that is not also the verb's: "leaves" -> leaf, not leave
    assert count_nouns(["two green maple leaves on the grass"])["leaf"] == 1
    assert "leave" not in count_nouns(["some leaves and a dog"])
    with pytest.raises(ValueError, match="template"):
        ConceptConfig(template="A photo of.")


def test_concept_bank_is_embedded(tiny_clip):
    caps = ["a red circle next to a blue star"] * 3 + ["two hearts"] * 2
    cfg = ConceptConfig(min_count=2)
    bank = build_concept_bank(caps, tiny_clip, cfg, cache=False)
    assert bank.words == ["circle", "star", "heart"] and bank.counts == [3, 3, 2]
    assert bank.embeddings.shape == (3, tiny_clip.embed_dim)
    assert torch.allclose(bank.embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)
    ens = build_concept_bank(caps, tiny_clip, replace(cfg, ensemble=True), cache=False)
    assert not torch.allclose(ens.embeddings, bank.embeddings)
    with pytest.raises(ValueError, match="min_count"):
        build_concept_bank(caps, tiny_clip, ConceptConfig(min_count=50), cache=False)


def test_reopening_trusts_unchanged_shards_and_verify_rehashes(tiny_clip, images, tmp_path, monkeypatch):
    import os
    import workbench.features.cache as features
    ids, cfg = [str(i) for i in range(len(images))], _cfg(tmp_path)
    extract_image_features(tiny_clip, images, ids, "set", cfg, progress=False)
    hashed, calls = [], []
    real_hash, real_encode = features.sha256_file, tiny_clip.encode_images
    monkeypatch.setattr(features, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    monkeypatch.setattr(tiny_clip, "encode_images", lambda px: calls.append(len(px)) or real_encode(px))
    extract_image_features(tiny_clip, images, ids, "set", cfg, progress=False)
    assert hashed == [] and calls == []                 # unchanged size + mtime: no file is read again
    # bit rot that keeps the size and the mtime: only a verifying open notices it
    f = tmp_path / "set" / "shard_00000" / "global.npy"
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    extract_image_features(tiny_clip, images, ids, "set", cfg, progress=False)
    assert calls == []
    extract_image_features(tiny_clip, images, ids, "set", replace(cfg, verify_checksums=True), progress=False)
    assert sum(calls) == 16                             # exactly the rotten shard is redone
