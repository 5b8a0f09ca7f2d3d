"""ViECap / IFCap parts against hand-computed cases, the prompt reaching the decoder, and the NoCaps protocol."""
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from workbench import methods
from workbench.methods.entities import (PromptedCaptioner, caption_entities, entity_ids, frequent_entities,
                                        mask_entities, zero_shot_entities)
from workbench.methods.ifcap import Fusion, nearest
from workbench.vocab import Vocabulary

FIX = Path(__file__).parent / "fixtures"
VOCAB = Vocabulary(["a", "dog", "cat", "park", "ball", "person", "man", "tree"])


def ids_of(words):
    return [VOCAB.stoi[w] for w in words]


def test_caption_entities_are_the_captions_nouns_in_the_object_vocabulary():
    out = caption_entities(["Two dogs and a man play with a ball in the park.", "A tree."], VOCAB,
                           entity_words=["dog", "ball", "park", "cat"], max_entities=3)
    assert out.shape == (2, 3)
    assert out[0].tolist() == ids_of(["dog", "person", "ball"])       # man -> person; cut at 3; order of occurrence
    assert out[1].tolist() == [0, 0, 0]                                # "tree" is not an object word here
    assert entity_ids(["man", "woman", "dog", "dog"], VOCAB) == ids_of(["person", "dog"])
    assert entity_ids(["man"], VOCAB, people_to_person=False) == ids_of(["man"])


def test_mask_entities_drops_the_given_share():
    ids = torch.full((200, 50), 5)
    assert torch.equal(mask_entities(ids, 0.0), ids) and (mask_entities(ids, 1.0) == 0).all()
    torch.manual_seed(0)
    dropped = (mask_entities(ids, 0.4) == 0).float().mean().item()
    assert abs(dropped - 0.4) < 0.02
    assert (mask_entities(torch.zeros(3, 4, dtype=torch.long), 0.0) == 0).all()     # padding stays padding
    with pytest.raises(ValueError, match="prob=1.5"):
        mask_entities(ids, 1.5)


def test_zero_shot_entities_softmax_top_k_threshold():
    words = ["dog", "cat", "park"]
    emb = torch.eye(3, 8)
    one = F.normalize(torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0]]), dim=-1)
    two = F.normalize(torch.tensor([[1.0, 1.0, 0, 0, 0, 0, 0, 0]]), dim=-1)
    assert zero_shot_entities(one, words, emb, VOCAB, 0.01, 3, 0.4)[0].tolist() == ids_of(["dog"]) + [0, 0]
    # cos 0.707 to dog and cat: p = 0.5 each at any tau (park far below): both kept at 0.4, none at 0.6
    assert sorted(zero_shot_entities(two, words, emb, VOCAB, 0.01, 3, 0.4)[0].tolist()[:2]) == sorted(ids_of(["dog", "cat"]))
    assert zero_shot_entities(two, words, emb, VOCAB, 0.01, 3, 0.6)[0].tolist() == [0, 0, 0]
    # a hot softmax spreads the mass: p(dog) = e^(1/1) / (e + 2) = 0.58 at tau 1
    assert zero_shot_entities(one, words, emb, VOCAB, 1.0, 3, 0.6)[0].tolist() == [0, 0, 0]
    assert zero_shot_entities(one, words, emb, VOCAB, 1.0, 3, 0.5)[0].tolist() == ids_of(["dog"]) + [0, 0]
    assert zero_shot_entities(one, words, emb, VOCAB, 0.01, 1, 0.0).shape == (1, 1)


def test_frequent_entities_counts_every_occurrence():
    retrieved = [["a dog in a park", "two dogs and a cat", "a dog with a ball", "a cat in the park"],
                 ["a tree", "a ball"]]
    out = frequent_entities(retrieved, VOCAB, threshold=2, max_entities=4)
    assert out[0].tolist() == ids_of(["dog", "cat", "park"]) + [0]        # dog 3, cat 2, park 2 (ties a-z); ball 1
    assert out[1].tolist() == [0, 0, 0, 0]
    assert frequent_entities(retrieved, VOCAB, threshold=3, max_entities=2)[0].tolist() == ids_of(["dog"]) + [0]


def test_nearest_excludes_self_and_orders_by_cosine():
    mem = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7]])
    assert nearest(mem, mem, 2, exclude_self=True).tolist() == [[1, 3], [0, 3], [3, 1], [1, 2]]
    assert nearest(mem[:1], mem, 1).tolist() == [[0]]


def test_fusion_reads_the_retrieved_captions():
    torch.manual_seed(0)
    fuse = Fusion(8, 2)
    x, r1, r2 = torch.randn(3, 8), torch.randn(3, 4, 8), torch.randn(3, 4, 8)
    assert fuse(x, r1).shape == (3, 8)
    assert not torch.allclose(fuse(x, r1), fuse(x, r2))
    # one retrieved caption: attention has nothing to choose; the output is x + W_o W_v LN-free value of it
    single = torch.randn(3, 1, 8)
    q = x.unsqueeze(1)
    v = F.linear(single, fuse.attn.in_proj_weight[16:])
    expect = q + F.linear(v, fuse.attn.out_proj.weight)
    expect = expect + fuse.mlp(fuse.norm2(expect))
    assert torch.allclose(fuse(x, single), expect[:, 0], atol=1e-5)


def test_the_decoder_sees_the_prompt():
    from dataclasses import replace

    from workbench.captioner import Captioner
    from workbench.config import CaptionerConfig
    torch.manual_seed(0)
    cap = Captioner(replace(CaptionerConfig.preset("tiny"), use_patches=False, mixup=False), len(VOCAB), 16, 16, 4)
    model = PromptedCaptioner(cap).eval()
    g, words = torch.randn(2, 16), VOCAB.encode_batch(["a dog", "a cat"])[:, :-1]
    p1, p2 = torch.tensor([ids_of(["dog"]), [0]]), torch.tensor([ids_of(["cat"]), [0]])
    mem, pad = model.encode(g, prompt=p1, mode="inference")
    assert mem.shape[1] == 1 + 1 + 1 and pad.tolist() == [[False, False, False], [False, False, True]]
    a, b = model(words, g, prompt=p1, mode="inference"), model(words, g, prompt=p2, mode="inference")
    assert not torch.allclose(a[0], b[0])                     # another entity, other logits
    assert torch.allclose(a[1], b[1])                         # a padded (empty) prompt reads as "no entity"


def test_new_methods_are_registered_with_their_reported_numbers():
    for name, cider in (("viecap", 92.9), ("ifcap", 108.0)):
        assert methods.get(name).reported.CIDEr == cider
    assert methods.get("pcm-viecap").reported_nocaps["overall"] == (74.7, 10.3)
    assert methods.get("pcm-viecap").config.pcm and methods.get("syn-viecap").training_data == "synthetic"
    assert methods.get("viecap", "paper_b32").config.tau == 0.01
    with pytest.raises(ValueError, match="inputs='synthetic'"):
        methods.get("viecap[pcm=true]")
    with pytest.raises(ValueError, match="l=3 < k=5"):
        methods.get("ifcap[l=3]")


def test_ifcap_retrieval_noise_rule():
    from workbench.config import carryover as R
    assert R.noise_variance(R.RN50X64, R.IFCAP_RETRIEVAL_NOISE) == 0.04          # the paper's, on its backbone
    assert R.noise_variance(R.VIT_B32, R.IFCAP_RETRIEVAL_NOISE) == pytest.approx(0.08)
    cos = R.expected_noise_cosine(R.noise_variance(R.sandbox_backbone(), R.IFCAP_RETRIEVAL_NOISE),
                                  R.sandbox_backbone().dim)
    assert cos == pytest.approx(R.expected_noise_cosine(0.04, 1024))


def test_ifcap_training_batches_carry_the_retrieved_neighbours(tiny_exp):
    m = methods.get("ifcap")
    train = m.train_set(tiny_exp)
    mem, _ = m.memory(tiny_exp)
    assert train.retrieved.shape == (16, 5)
    assert all(i not in row for i, row in enumerate(train.retrieved.tolist()))       # never itself
    b = train.batch([0, 3], tiny_exp.vocab, False)
    assert b["tokens"].shape == (2, 5, mem.shape[1]) and b["prompt"].shape == (2, 10)
    assert torch.allclose(b["tokens"][1, 0], F.normalize(mem[train.retrieved[3, 0]], dim=-1))


def nocaps_layout(tmp_path) -> Path:
    """The NoCaps fixture with COCO photos standing in for its three Open Images photos."""
    root = tmp_path / "nocaps"
    (root / "val").mkdir(parents=True)
    blob = json.loads((FIX / "nocaps_val_sample.json").read_text())
    shutil.copy(FIX / "nocaps_val_sample.json", root / "nocaps_val_4500_captions.json")
    for im, coco in zip(blob["images"], ("000000010012.jpg", "000000010440.jpg", "000000244592.jpg")):
        shutil.copy(FIX / "coco_images" / coco, root / "val" / im["file_name"])
    return root


def test_nocaps_reader_keeps_domains():
    from workbench.data import load_captions
    items = load_captions(FIX / "nocaps_val_sample.json")
    assert [it.domain for it in items] == ["in-domain", "near-domain", "out-domain"]
    assert len(items[0].captions) == 5 and items[1].file_name == "0021ad6b14b1b9d6.jpg"


def test_nocaps_protocol_scores_by_domain(tiny_exp, tmp_path):
    from workbench.config import CaptionerConfig, FeatureConfig, PCMConfig, ProtocolConfig, ReferenceSetConfig
    from workbench.evaluation import coco_metrics
    from workbench.protocols import run_protocol
    root = nocaps_layout(tmp_path)
    test = ReferenceSetConfig("nocaps", str(root / "val"), str(root / "nocaps_val_4500_captions.json"))
    m = methods.get("viecap", "paper_b32")
    model = m.build(tiny_exp, CaptionerConfig.preset("tiny"), PCMConfig.preset("tiny"), 0)
    rows = run_protocol(model, tiny_exp.vocab, tiny_exp.clip, ProtocolConfig(train_corpus="mscoco", test_sets=(test,),
                        beam=1), FeatureConfig.preset("tiny", root=str(tmp_path / "f")), progress=False, method=m,
                        exp=tiny_exp)
    assert [r["subset"] for r in rows] == ["overall", "in-domain", "near-domain", "out-domain"]
    assert rows[0]["images"] == 3 and all(r["images"] == 1 for r in rows[1:])
    assert rows[2]["protocol"] == "cross-domain: mscoco -> nocaps (near-domain)"
    refs = json.loads((FIX / "nocaps_val_sample.json").read_text())
    near = [a["caption"] for a in refs["annotations"] if a["image_id"] == 1]
    assert rows[2]["CIDEr"] == pytest.approx(coco_metrics({1: near}, {1: rows[0]["hyps"][1]}, spice=False)["CIDEr"])


def test_nocaps_layout_in_prepare_and_pipeline(tmp_path):
    from workbench.config.pipeline import PipelineConfig
    from workbench.prepare import check_nocaps
    nocaps_layout(tmp_path)
    report = check_nocaps(tmp_path)
    assert report["missing"] == [] and report["folders"]["val"] == (3, 4500)
    assert {k: v["images_present"] for k, v in report["splits"].items()} == {
        "in-domain": 1, "near-domain": 1, "out-domain": 1}
    cfg = PipelineConfig.for_corpora("tiny", "mscoco", ("mscoco", "nocaps"), root=str(tmp_path))
    assert cfg.test_sets[1].captions_file == str(tmp_path / "nocaps" / "nocaps_val_4500_captions.json")
    with pytest.raises(ValueError, match="train corpus='nocaps'"):
        PipelineConfig.for_corpora("tiny", "nocaps", ("mscoco",))
