"""The seed methods: their pure functions against hand-computed cases, the registry, and a tiny end-to-end
train + caption run of every registered method (plus the runner's rows on a few of them)."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench import methods
from workbench.methods import common, syntic


def test_noise_injection_matches_capdec():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 512, generator=g)
    noisy = common.noise_injection(x, 0.016, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(noisy.norm(dim=-1), torch.ones(4000), atol=1e-5)          # renormalised
    cos = F.cosine_similarity(noisy, x, dim=-1).mean()
    assert abs(float(cos) - 1 / np.sqrt(1 + 512 * 0.016)) < 0.01                      # 0.33 at D = 512
    again = common.noise_injection(x, 0.016, generator=torch.Generator().manual_seed(1))
    assert torch.equal(noisy, again)
    raw = common.noise_injection(x, 0.016, renormalize=False, generator=torch.Generator().manual_seed(1))
    assert float(raw.norm(dim=-1).mean()) > 2.0                                       # sqrt(1 + 512 * 0.016)
    with pytest.raises(ValueError, match="variance=-1"):
        common.noise_injection(x, -1)


def test_support_projection_limits():
    g = torch.Generator().manual_seed(0)
    mem = F.normalize(torch.randn(50, 16, generator=g), dim=-1)
    q = mem[:10] + 0.05 * torch.randn(10, 16, generator=g)
    nn_idx = (F.normalize(q, dim=-1) @ mem.T).argmax(-1)
    assert torch.allclose(common.support_projection(q, mem, tau=1e-4), mem[nn_idx], atol=1e-4)   # tau -> 0: nearest
    loo = common.support_projection(mem[:10], mem, tau=1e-4, exclude=torch.arange(10))
    assert not torch.allclose(loo, mem[:10], atol=1e-2)                                # its own row is left out
    flat = common.support_projection(q, mem, tau=1e4)                                  # tau -> inf: the mean
    assert torch.allclose(flat, F.normalize(mem.mean(0), dim=-1).expand(10, -1), atol=1e-3)
    with pytest.raises(ValueError, match="tau=0"):
        common.support_projection(q, mem, 0)


def test_mean_alignment_equalises_the_means():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(500, 32, generator=g) + 3.0, dim=-1)               # two cones apart
    txt = F.normalize(torch.randn(600, 32, generator=g) - 3.0, dim=-1)
    mi, mt = common.modality_means(img, txt)
    moved = common.mean_alignment(img, mi, mt)
    assert F.cosine_similarity(moved.mean(0), mt, dim=0) > 0.99
    assert (moved.mean(0) - mt).norm() < 0.1 * (mi - mt).norm()
    shifted = F.normalize(img, dim=-1) - mi + mt                                       # before renormalising: exact
    assert torch.allclose(shifted.mean(0), mt, atol=1e-5)


def test_rotation_and_ot_maps():
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(200, 8, generator=g), dim=-1)
    rot = common.rotation_alignment(x, x)                                              # same set: the identity
    assert torch.allclose(common.apply_rotation(x, rot), x, atol=1e-4)
    t = F.normalize(torch.randn(100, 8, generator=g), dim=-1)
    mapped = common.ot_barycentric(x[:50], t)
    assert mapped.shape == (50, 8) and torch.allclose(mapped.norm(dim=-1), torch.ones(50), atol=1e-5)
    same = common.ot_barycentric(t[:40], t[:40], reg=0.01)                             # to itself: each to itself
    assert (F.normalize(same, dim=-1) @ t[:40].T).argmax(-1).tolist() == list(range(40))


def test_feature_optimisation_lowers_eq2_and_moves_toward_the_caption():
    g = torch.Generator().manual_seed(0)
    t = F.normalize(torch.randn(64, 16, generator=g), dim=-1)
    s = t + 1.5 * torch.randn(64, 16, generator=g)
    out, log = syntic.optimize_features(s, t, tau=0.1, lr=0.05, epochs=20, batch=16)
    assert log["loss_after"] < log["loss_before"]
    assert log["cos_to_caption_after"] > log["cos_to_caption_before"]
    assert float(syntic.contrastive_loss(out[:16], t[:16], 0.1)) < float(syntic.contrastive_loss(s[:16], t[:16], 0.1))
    paper, plog = syntic.optimize_features(s, t, tau=0.01, lr=1e-5, epochs=1, batch=16)
    assert plog["cos_to_original"] > 0.999                                            # the paper's lr barely moves them


def test_tagger_threshold_hits_the_target_count():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(100, 20, generator=g)
    th = syntic.calibrate_threshold(scores, target_mean=2.0, max_tags=5)
    index, mask = syntic.select_tags(scores, th, 5)
    assert index.shape == (100, 5) and abs(float(mask.sum(-1).float().mean()) - 2.0) < 0.1
    bank = torch.randn(20, 8, generator=g)
    emb = syntic.tag_embeddings(index, mask, bank)
    assert torch.equal(emb[~mask], torch.zeros_like(emb[~mask]))
    patches = torch.zeros(1, 4, 8)
    patches[0, 2] = bank[7]
    assert syntic.tag_scores(patches, bank)[0].argmax() == 7                          # the patch shows concept 7


def test_registry():
    names = methods.names()
    for n in ("capdec", "decap", "ucc", "ucc+mean", "ucc-self", "syntic", "syntic-loo", "pcm-net", "oracle"):
        assert n in names
    assert methods.get("text-only").name == "capdec"                                   # the ablation's old name
    with pytest.raises(ValueError, match="method='nope'"):
        methods.get("nope")
    assert methods.expand("all") == tuple(names)
    assert methods.expand("syntic-table4")[0] == "syntic-baseline"
    assert methods.expand("decap,capdec") == ("decap", "capdec")
    from workbench.config import CaptionerConfig
    assert methods.get("syntic").options()["fo"] and methods.get("capdec").options() == {   # the preset's noise,
        "noise_variance": CaptionerConfig.preset("sandbox").noise_variance, "renormalize": True}   # resolved
    assert methods.get("pcm-net").options() == {}                 # PCM-Net's rows keep their keys


def test_experiment_has_what_the_methods_need(tiny_exp):
    e = tiny_exp
    assert len(e.captions) == 16 and all(len(g) == 5 and c in g for g, c in zip(e.groups, e.captions))
    assert len(e.group_store) == 80 and len(e.unpaired) == 8
    assert set(e.evals) == {"val", "test", "test_unseen"}
    unpaired_ids = set(e.unpaired.ids)
    train_ids = {i.split("#")[0] for i in e.sets["text"].store.ids}
    assert not unpaired_ids & train_ids, "unpaired images come from other scenes than the training captions"


@pytest.mark.parametrize("name", methods.names())
def test_every_method_trains_and_captions(tiny_exp, tmp_path, name):
    from workbench.config import CaptionerConfig, PCMConfig, TrainConfig
    m = methods.get(name)
    if name.startswith("cmsa"):
        m.config = replace(m.config, rl_epochs=1, rl_batch=4, samples=2)
    model = m.build(tiny_exp, CaptionerConfig.preset("tiny"), PCMConfig.preset("tiny"), 0)
    tcfg = replace(m.train_config(TrainConfig.preset("tiny")), epochs=1, batch_size=4, run_dir=str(tmp_path))
    hist = m.fit(model, tiny_exp, tcfg, name, progress=False)
    steps = 2 if name.startswith("cmsa") and m.config.rl else 4                       # 8 unpaired images / 4
    assert len(hist["loss"]) == steps and np.isfinite(hist["loss"]).all() and len(hist["val_cider"]) == 1
    caps = m.eval_set(tiny_exp, "test").captions(model, m.vocabulary(tiny_exp), 2)
    assert len(caps) == 4 and all(isinstance(c, str) for c in caps)
    assert m.eval_set(tiny_exp, "test").global_ is tiny_exp.evals["test"][0].global_   # CLIPScore: the raw image


def test_runner_rows_and_resume(tiny_exp, tiny_clip):
    from workbench.experiments import runner
    cfg = replace(tiny_exp.cfg, variants=("decap", "ucc"), seeds=(0,))
    rows = runner.run_ablation(cfg, tiny_clip, tiny_exp, progress=False)
    assert [r["model"] for r in rows] == ["decap", "ucc"] and rows[0]["block"] == "text only"
    assert "CIDEr_mean_correction" in rows[1] and rows[0]["method_options"]["tau"] is None
    again = runner.run_ablation(cfg, tiny_clip, tiny_exp, progress=False)
    assert [r["seconds"] for r in again] == [r["seconds"] for r in rows]             # reused, not retrained
    board = runner.leaderboard(rows)
    assert {b["method"] for b in board} == {"decap", "ucc"} and board[0]["reported_COCO_CIDEr"] > 0
    assert "reported" in runner.leaderboard_markdown(board)


def test_paper_profiles_take_the_papers_settings():
    assert methods.get("capdec", "paper_b32").options()["noise_variance"] == 0.016
    assert methods.get("decap", "paper_l14").options()["tau"] == 0.01
    s = methods.get("syntic+fp", "paper_b32").options()
    assert s["tagger"] == "detr" and s["tau"] == 0.01 and not s["fo"] and s["fp"]     # the row's flags stay
    assert methods.get("syntic").options()["tagger"] == "clip"                          # sandbox default


@pytest.fixture(scope="module")
def tiny_detr(tmp_path_factory):
    """A tiny random DETR (ResNet backbone, no timm, no download) saved locally, as the paper profile loads one."""
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig
    torch.manual_seed(0)
    labels = {0: "star", 1: "heart", 2: "circle"}
    cfg = DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False,
                     backbone_config=ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1],
                                                  layer_type="basic", out_features=["stage4"]),
                     d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, num_queries=6,
                     id2label=labels, label2id={v: k for k, v in labels.items()})
    out = tmp_path_factory.mktemp("detr")
    DetrForObjectDetection(cfg).save_pretrained(out)
    DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(out)
    return out


def test_detr_tagger_and_syntic_on_the_paper_path(tiny_exp, tiny_detr, tmp_path):
    from workbench.config import CaptionerConfig, PCMConfig, TrainConfig
    from workbench.methods.tagging import DetrTagger
    from workbench.training import train_captioner
    images = tiny_exp.evals["test"][1].images
    tagger = DetrTagger(str(tiny_detr), threshold=0.0, max_tags=2)
    tags = tagger.tags(images)
    assert len(tags) == 4 and all(1 <= len(t) <= 2 and set(t) <= {"star", "heart", "circle"} for t in tags)
    emb = tagger.embeddings(images, tiny_exp.clip)
    assert emb.shape == (4, 2, tiny_exp.clip.embed_dim) and (emb[:, 0].norm(dim=-1) > 0).all()
    m = methods.get("syntic", "paper_b32")
    m.config = replace(m.config, detr_model=str(tiny_detr), detr_threshold=0.0)
    model = m.build(tiny_exp, CaptionerConfig.preset("tiny"), PCMConfig.preset("tiny"), 0)
    tcfg = replace(m.train_config(TrainConfig.preset("tiny")), epochs=1, batch_size=8, run_dir=str(tmp_path))
    hist = train_captioner(model, tiny_exp.vocab, m.train_set(tiny_exp), m.eval_set(tiny_exp, "val"), tcfg, "detr",
                           progress=False)
    assert len(hist["loss"]) == 2
    assert len(m.eval_set(tiny_exp, "test").captions(model, tiny_exp.vocab, 1)) == 4


@pytest.mark.parametrize("name", ["decap", "syntic"])
def test_protocols_caption_real_test_sets_through_the_method(tiny_exp, tiny_detr, tmp_path, name):
    """The paper path: a method's inference recipe on real COCO photos (fixtures); SynTIC's DETR reads the files."""
    from pathlib import Path

    from workbench.config import CaptionerConfig, FeatureConfig, PCMConfig, ProtocolConfig, ReferenceSetConfig
    from workbench.experiments.protocols import run_protocol
    fix = Path(__file__).parent / "fixtures"
    test = ReferenceSetConfig("mscoco", str(fix / "coco_images"), str(fix / "karpathy_mscoco_val_sample.json"))
    m = methods.get(name, "paper_b32")
    if name == "syntic":
        m.config = replace(m.config, detr_model=str(tiny_detr), detr_threshold=0.0)
    model = m.build(tiny_exp, CaptionerConfig.preset("tiny"), PCMConfig.preset("tiny"), 0)
    rows = run_protocol(model, tiny_exp.vocab, tiny_exp.clip, ProtocolConfig(train_corpus="mscoco", test_sets=(test,),
                        beam=1), FeatureConfig.preset("tiny", root=str(tmp_path)), progress=False, method=m,
                        exp=tiny_exp)
    assert rows[0]["images"] == 3 and len(rows[0]["hyps"]) == 3 and 0.0 <= rows[0]["CLIPScore"] <= 2.5


def test_syntic_rows_keep_fos_log(tiny_exp):
    """FO's log reaches the row (runner: ``extra_metrics``): whether the features moved is read from the table."""
    fo = methods.get("syntic+fo[fo_lr=0.05 fo_epochs=3]")
    fo.train_set(tiny_exp)
    log = fo.extra_metrics(None, tiny_exp, None, 1)
    assert {"fo_loss_before", "fo_loss_after", "fo_cos_to_original", "fo_move_to_spread"} <= set(log)
    assert log["fo_loss_after"] < log["fo_loss_before"] and log["fo_cos_to_original"] < 1.0
    none = methods.get("syntic-baseline")
    none.train_set(tiny_exp)
    assert none.extra_metrics(None, tiny_exp, None, 1) == {}


def test_pcm_net_rows_take_a_noise_override_and_keep_their_keys_without_one():
    from workbench.config import CaptionerConfig
    cap = CaptionerConfig.preset("sandbox")
    plain = methods.get("base-global")
    assert plain.options() == {}                                    # preset rows keep their keys
    assert plain.captioner_config(cap).noise_variance == cap.noise_variance > 0
    clean = methods.get("base-global[global_noise=0]")
    assert clean.options() == {"global_noise": 0}
    assert clean.captioner_config(cap).noise_variance == 0.0
    assert clean.captioner_config(cap).use_patches is False
    with pytest.raises(ValueError, match="global_noise"):
        methods.get("base[global_noise=-1]")
