"""ViECap / IFCap parts against hand-computed cases, the prompt reaching the decoder, and the NoCaps protocol."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench import methods
from workbench.methods.viecap import ViECapConfig
from workbench.methods.entities import (PromptedCaptioner, caption_entities, entity_ids, frequent_entities,
                                        mask_entities, zero_shot_entities)
from workbench.methods.common import noise_injection
from workbench.methods.ifcap import (Fusion, IFCapConfig, matched_retrieval_noise, nearest,
                                     retrieval_overlap)
from workbench.model.vocab import Vocabulary

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

    from workbench.model.captioner import Captioner
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


def test_viecap_takes_its_codes_entity_threshold_per_test_corpus(tiny_clip, tmp_path, monkeypatch):
    m = methods.get("pcm-viecap")
    assert m.for_test_set("mscoco") is m and m.for_test_set("sandbox") is m and m.config.threshold == 0.4
    flickr, nocaps = m.for_test_set("flickr30k"), m.for_test_set("nocaps")
    assert (flickr.config.threshold, nocaps.config.threshold) == (0.3, 0.2)          # eval_flickr30k / eval_nocaps.sh
    assert flickr.name == "pcm-viecap" and flickr.config.pcm and m.config.threshold == 0.4   # the original unchanged
    assert methods.get("capdec").for_test_set("flickr30k").name == "capdec"                # others: the same
    with pytest.raises(ValueError, match="test_thresholds"):
        ViECapConfig(test_thresholds=(("nocaps", 1.5),))
    # the protocol asks for each test set's settings before captioning it
    from workbench.experiments import protocols
    from workbench.config import ProtocolConfig, ReferenceSetConfig
    seen = []
    m = methods.get("viecap")
    monkeypatch.setattr(type(m), "inference_set", lambda self, exp, ev, images=None: seen.append(
        self.config.threshold) or ev)
    monkeypatch.setattr(protocols, "evaluate_captioner", lambda *a, **k: ({"CIDEr": 0.0}, ["x"] * len(a[2].ids)))
    sets = tuple(ReferenceSetConfig(c, "imgs", "refs.json") for c in ("mscoco", "flickr30k", "nocaps"))
    ev = type("E", (), {"ids": [1], "refs": [["a"]]})()
    loaded = {t.corpus: (ev, ["p"], [], [None]) for t in sets}
    protocols.run_protocol(None, None, tiny_clip, ProtocolConfig(train_corpus="mscoco", test_sets=sets), method=m,
                           exp=None, loaded=loaded, progress=False)
    assert seen == [0.4, 0.3, 0.2]


def test_ifcap_takes_its_readmes_inference_settings_per_corpus_pair(tiny_clip, monkeypatch):
    m = methods.get("ifcap")
    assert m.for_test_set("mscoco", "mscoco") is m and m.for_test_set("sandbox", "sandbox") is m   # the defaults
    nocaps, f2c = m.for_test_set("nocaps", "mscoco"), m.for_test_set("mscoco", "flickr30k")
    c2f = m.for_test_set("flickr30k", "mscoco")
    assert (nocaps.config.inference_entities, nocaps.config.l, nocaps.config.threshold) == ("clip", 7, 0.2)
    assert (f2c.config.inference_entities, f2c.config.l, f2c.config.fef_threshold) == ("fef", 9, 4)   # --K 4
    assert (c2f.config.l, c2f.config.fef_threshold) == (7, 3)
    assert nocaps.name == "ifcap" and m.config.inference_entities == "fef" and m.config.l == 9   # unchanged
    off = methods.get("ifcap[per_test_set=false]")
    assert off.for_test_set("nocaps", "mscoco") is off
    # the protocol passes the training corpus with each test corpus
    from workbench.experiments import protocols
    from workbench.config import ProtocolConfig, ReferenceSetConfig
    seen = []
    monkeypatch.setattr(type(m), "inference_set", lambda self, exp, ev, images=None: seen.append(
        (self.config.inference_entities, self.config.l, self.config.fef_threshold)) or ev)
    monkeypatch.setattr(protocols, "evaluate_captioner", lambda *a, **k: ({"CIDEr": 0.0}, ["x"] * len(a[2].ids)))
    sets = tuple(ReferenceSetConfig(c, "imgs", "refs.json") for c in ("flickr30k", "mscoco"))
    ev = type("E", (), {"ids": [1], "refs": [["a"]]})()
    loaded = {t.corpus: (ev, ["p"], [], [None]) for t in sets}
    protocols.run_protocol(None, None, tiny_clip, ProtocolConfig(train_corpus="flickr30k", test_sets=sets),
                           method=m, exp=None, loaded=loaded, progress=False)
    assert seen == [("fef", 7, 3), ("fef", 9, 4)]


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
    from workbench.corpora.readers import load_captions
    items = load_captions(FIX / "nocaps_val_sample.json")
    assert [it.domain for it in items] == ["in-domain", "near-domain", "out-domain"]
    assert len(items[0].captions) == 5 and items[1].file_name == "0021ad6b14b1b9d6.jpg"


def test_nocaps_protocol_scores_by_domain(tiny_exp, tmp_path):
    from workbench.config import CaptionerConfig, FeatureConfig, PCMConfig, ProtocolConfig, ReferenceSetConfig
    from workbench.evaluation.metrics import coco_metrics
    from workbench.experiments.protocols import run_protocol
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
    from workbench.corpora.prepare import check_nocaps
    nocaps_layout(tmp_path)
    report = check_nocaps(tmp_path)
    assert report["missing"] == [] and report["folders"]["val"] == (3, 4500)
    assert {k: v["images_present"] for k, v in report["splits"].items()} == {
        "in-domain": 1, "near-domain": 1, "out-domain": 1}
    cfg = PipelineConfig.for_corpora("tiny", "mscoco", ("mscoco", "nocaps"), root=str(tmp_path))
    assert cfg.test_sets[1].captions_file == str(tmp_path / "nocaps" / "nocaps_val_4500_captions.json")
    with pytest.raises(ValueError, match="train corpus='nocaps'"):
        PipelineConfig.for_corpora("tiny", "nocaps", ("mscoco",))


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory, tiny_exp):
    """A tiny random GPT-2 and a word-level tokenizer (the template's words included), saved locally: ViECap's
    decoder through from_pretrained, offline."""
    from tokenizers import Tokenizer, models as tm, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    words = ["<|endoftext|>", "<unk>"] + list(dict.fromkeys(tiny_exp.vocab.itos[4:] + ["There", "are", "something",
                                                                                      "in", "image", ",", "."]))
    tok = Tokenizer(tm.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<unk>")
    out = tmp_path_factory.mktemp("gpt2")
    fast.save_pretrained(out)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_embd=16, n_layer=1, n_head=2, n_positions=96,
                               bos_token_id=0, eos_token_id=0)).save_pretrained(out)
    return out


def test_viecap_with_its_own_decoder_on_a_tiny_gpt2(tiny_exp, tiny_gpt2, tmp_path):
    from dataclasses import replace

    from workbench.config import CaptionerConfig, PCMConfig, TrainConfig
    from workbench.methods.entity_lm import prompt_text
    from workbench.methods.prefix_lm import TokenizerVocab
    assert prompt_text(["dog", "park"]) == "There are dog, park in image."          # ViECap's template
    assert prompt_text([]) == "There are something in image."
    m = methods.get("viecap-lm", "paper_b32")
    m.config = replace(m.config, lm_model=str(tiny_gpt2), prefix_length=2, mapper_layers=1)
    vocab = m.vocabulary(tiny_exp)
    assert isinstance(vocab, TokenizerVocab)
    model = m.build(tiny_exp, CaptionerConfig.preset("tiny"), PCMConfig.preset("tiny"), 0)
    assert all(p.requires_grad for p in model.lm.parameters())                       # fine-tuned, as ViECap
    g = tiny_exp.evals["test"][0].global_[:2]
    p1 = torch.tensor([[tiny_exp.vocab.stoi[tiny_exp.bank.words[0]], 0], [0, 0]])
    prefix, pad = model.encode(g, prompt=p1)
    n_hard = [len(h) for h in model.hard_prompt_ids(p1)]
    assert prefix.shape[1] == 2 + max(n_hard) and (~pad).sum(1).tolist() == [2 + n for n in n_hard]
    words = vocab.encode_batch(["a cat", "a dog"])[:, :-1]
    a = model(words, g, prompt=p1)
    b = model(words, g, prompt=torch.zeros_like(p1))
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1], atol=1e-5)   # the prompt reaches the LM
    # incremental decoding equals teacher forcing on the whole prefix (left padding, positions, cache)
    model.eval()
    with torch.no_grad():
        full = model(words, g, prompt=p1, mode="inference")
        state = model.start(*model.encode(g, prompt=p1, mode="inference"))
        steps = [model.step(words[:, t], state) for t in range(words.shape[1])]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-4)
    tcfg = replace(m.train_config(TrainConfig.preset("tiny")), epochs=1, batch_size=4, run_dir=str(tmp_path))
    hist = m.fit(model, tiny_exp, tcfg, "viecap-lm", progress=False)
    assert np.isfinite(hist["loss"]).all()
    caps = m.eval_set(tiny_exp, "test").captions(model, vocab, 2)
    assert len(caps) == 4 and all(isinstance(c, str) for c in caps)


def test_ifcap_with_its_own_decoder_fuses_the_retrieved_captions_into_a_tiny_gpt2(tiny_exp, tiny_gpt2, tmp_path):
    """``ifcap-lm``: IFCap's fused input through ViECap's mapper into a fine-tuned causal LM; the retrieved
    captions reach the LM's logits; trains and captions end to end; IFCap's scripts' training settings."""
    from dataclasses import replace

    from workbench.config import CaptionerConfig, PCMConfig, TrainConfig
    from workbench.methods.prefix_lm import TokenizerVocab
    m = methods.get("ifcap-lm", "paper_b32")
    assert m.name == "ifcap-lm" and m.config.lm_model == "gpt2" and m.reported is None
    assert m.paper_training("mscoco") == {"batch_size": 80, "lr": 2e-5, "epochs": 5}
    m.config = replace(m.config, lm_model=str(tiny_gpt2), prefix_length=2, mapper_layers=1, heads=1)
    vocab = m.vocabulary(tiny_exp)
    assert isinstance(vocab, TokenizerVocab)
    model = m.build(tiny_exp, CaptionerConfig.preset("tiny"), PCMConfig.preset("tiny"), 0)
    assert model.fusion is not None and all(p.requires_grad for p in model.lm.parameters())
    g = tiny_exp.evals["test"][0].global_[:2]
    near = torch.randn(2, 3, g.shape[1])
    words = vocab.encode_batch(["a cat", "a dog"])[:, :-1]
    a = model(words, g, tokens=near)
    b = model(words, g, tokens=torch.randn(2, 3, g.shape[1]))
    assert not torch.allclose(a, b)                                                  # the retrieval reaches the LM
    tcfg = replace(m.train_config(TrainConfig.preset("tiny")), epochs=1, batch_size=4, run_dir=str(tmp_path))
    hist = m.fit(model, tiny_exp, tcfg, "ifcap-lm", progress=False)
    assert np.isfinite(hist["loss"]).all()
    caps = m.eval_set(tiny_exp, "test").captions(model, vocab, 2)
    assert len(caps) == 4 and all(isinstance(c, str) for c in caps)


def test_paper_settings_follow_the_training_corpus():
    assert methods.get("syntic", "paper_b32", "flickr30k").config.tau == pytest.approx(1 / 80)
    assert methods.get("syntic", "paper_b32", "mscoco").config.tau == 0.01
    assert methods.get("syntic", None, "flickr30k").config.tau is None               # the sandbox keeps its rule
    ifc = methods.get("ifcap", "paper_b32", "flickr30k").config
    assert (ifc.l, ifc.fef_threshold) == (7, 3)
    assert methods.get("maccap", "paper_b32").paper_training("mscoco") == {"batch_size": 128, "lr": 4e-4}
    assert methods.get("maccap-s1").paper_training("mscoco") == {}                   # the workbench decoder
    assert methods.get("viecap-lm").paper_training("flickr30k")["epochs"] == 30
    assert methods.get("viecap").paper_training("mscoco") == {}


def _caption_world(n_mem=2000, n_val=300, dim=64, spread=2.0, seed=0):
    """Captions as unit vectors around 40 topic centres: memory [M, D] and val captions [B, D]."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(40, dim, generator=g), dim=-1)
    def draw(n):
        return F.normalize(centres[torch.randint(0, 40, (n,), generator=g)]
                           + spread * torch.randn(n, dim, generator=g) / dim ** 0.5, dim=-1)
    return draw(n_mem), draw(n_val)


def test_retrieval_overlap_is_one_for_the_anchor_itself_and_falls_with_noise():
    mem, txt = _caption_world()
    assert retrieval_overlap(txt, txt, mem, 5, 50) == 1.0
    g = torch.Generator().manual_seed(1)
    shares = [retrieval_overlap(noise_injection(txt, v, generator=g), txt, mem, 5, 50) for v in (1e-3, 3e-2, 1.0)]
    assert shares[0] > shares[1] > shares[2]
    assert shares[2] < 0.1       # v = 1 on 64 dims: expected cosine 0.12, retrieval near chance (50 / 2000)


def test_matched_retrieval_noise_recovers_the_noise_that_made_the_images():
    """Where "images" are captions with known noise v*, the rule returns v* (IFCap's meaning: a noisy caption
    retrieves as its image does)."""
    mem, txt = _caption_world()
    for v_star in (5e-3, 3e-2):
        img = noise_injection(txt, v_star, generator=torch.Generator().manual_seed(7))
        out = matched_retrieval_noise(img, txt, mem, k=5, neighbourhood=50)
        assert v_star / 2 < out["variance"] < v_star * 2, (v_star, out)
        assert abs(out["text_overlap"] - out["image_overlap"]) < 0.05
        assert out["chance"] == 50 / 2000


def test_carried_retrieval_noise_is_chance_on_tightly_packed_captions_and_the_matched_one_acts():
    """The sandbox case: captions packed tightly (text-text cosine near 1) leave the carried variance (0.04 on
    RN50x64 by expected cosine) at chance, while images that retrieve well get a noise that keeps retrieval."""
    from workbench.config import carryover as R
    mem, txt = _caption_world(spread=0.1)
    mem = F.normalize(mem + 3 * F.normalize(torch.ones(64), dim=0), dim=-1)      # one tight cone
    txt = F.normalize(txt + 3 * F.normalize(torch.ones(64), dim=0), dim=-1)
    carried = R.noise_variance(R.Backbone("toy", 64, 100.0, 49), R.IFCAP_RETRIEVAL_NOISE)
    g = torch.Generator().manual_seed(0)
    at_carried = retrieval_overlap(noise_injection(txt, carried, generator=g), txt, mem, 5, 50)
    img = noise_injection(txt, 1e-4, generator=torch.Generator().manual_seed(3))
    out = matched_retrieval_noise(img, txt, mem, k=5, neighbourhood=50)
    assert at_carried < 3 * out["chance"] and out["text_overlap"] > 10 * out["chance"]
    assert out["variance"] < carried / 100


def test_ifcap_config_refuses_an_unknown_retrieval_rule():
    with pytest.raises(ValueError, match="retrieval_rule"):
        IFCapConfig(retrieval_rule="paper")
    with pytest.raises(ValueError, match="neighbourhood"):
        IFCapConfig(neighbourhood=2)
