"""MacCap and CMSA: their pure functions against hand-computed cases, the frozen LM (sandbox and the paper's
from_pretrained path on a tiny random OPT saved locally), SCST's direction, and the runner's rows."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench import methods
from workbench.methods import cmsa, maccap
from workbench.model.decoding import sample
from workbench.methods.rl import Discriminator, scst_loss, sequence_logprob
from workbench.model.vocab import Vocabulary


def test_region_noise_tokens_have_the_expected_cosine():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(2000, 512, generator=g) * 3.0                            # any scale: normalised first
    tok = maccap.region_noise_tokens(t, 10, 0.016, torch.Generator().manual_seed(1))
    assert tok.shape == (2000, 10, 512) and torch.allclose(tok.norm(dim=-1), torch.ones(2000, 10), atol=1e-5)
    cos = F.cosine_similarity(tok, t.unsqueeze(1), dim=-1)
    assert abs(float(cos.mean()) - 1 / np.sqrt(1 + 512 * 0.016)) < 0.01     # 0.333 at D = 512, v = 0.016
    assert float(F.cosine_similarity(tok[:, 0], tok[:, 1], dim=-1).mean()) < 0.2   # each copy its own noise
    clean = maccap.region_noise_tokens(t, 3, 0.0)
    assert torch.allclose(clean, F.normalize(t, dim=-1).unsqueeze(1).expand(-1, 3, -1))


def test_subregions_paper_and_code():
    torch.manual_seed(0)
    b, n, d, k = 3, 8, 16, 2
    global_, patches = torch.randn(b, d), torch.randn(b, n, d)
    attn = torch.softmax(torch.randn(b, n + 1, n + 1) * 3, dim=-1)
    attn[:, 0, 0] = 5.0                                                       # CLS attends most to itself
    attn[:, 0] /= attn[:, 0].sum(-1, keepdim=True)
    region, rows, picked = maccap.subregions(global_, patches, attn, k, "paper")
    assert torch.allclose(rows.sum(-1), torch.ones(b, k), atol=1e-5)          # attention rows sum to 1
    assert (picked >= 1).all()                                                # patches only: CLS is never picked
    for i in range(b):
        want = attn[i, 0, 1:].topk(k).indices + 1
        assert picked[i].tolist() == want.tolist()
        toks = F.normalize(torch.cat([global_[i:i + 1], patches[i]]), dim=-1)
        for j in range(k):                                                    # the weighted mean of the tokens
            w = attn[i, picked[i, j]]
            assert torch.allclose(region[i, j], (w.unsqueeze(1) * toks).sum(0), atol=1e-5)
    region_c, rows_c, picked_c = maccap.subregions(global_, patches, attn, k, "code")
    assert (picked_c[:, 0] == 0).all()                                        # the code keeps CLS
    assert torch.allclose(rows_c, torch.softmax(torch.gather(attn, 1, picked_c.unsqueeze(-1).expand(-1, -1, n + 1)),
                                                 -1))
    assert torch.allclose(region_c.norm(dim=-1), torch.ones(b, k), atol=1e-5)
    with pytest.raises(ValueError, match="attn has shape"):
        maccap.subregions(global_, patches, attn[:, :4, :4], k)
    with pytest.raises(ValueError, match="n_cr=9"):
        maccap.subregions(global_, patches, attn, 9)


def test_inference_tokens_sum_mean_and_cls_only():
    g = F.normalize(torch.tensor([[1.0, 0.0]]), dim=-1)
    region = torch.tensor([[[0.0, 1.0]]])
    s = maccap.inference_tokens(g, region, 1, 0.0, "sum")
    assert torch.allclose(s, torch.tensor([[[2 ** -0.5, 2 ** -0.5]]]))         # normalise(I_s + I_c)
    # without noise the mean and the sum normalise to the same direction; with noise the mean is noisier
    m = maccap.inference_tokens(g, region, 1, 0.0, "mean")
    assert torch.allclose(s, m)
    cls = maccap.inference_tokens(g, None, 4, 0.0)
    assert cls.shape == (1, 4, 2) and torch.allclose(cls, g.expand(4, 2).unsqueeze(0))
    gens = [torch.Generator().manual_seed(0) for _ in range(2)]
    big = torch.randn(500, 64, generator=torch.Generator().manual_seed(3))
    reg = torch.randn(500, 1, 64, generator=torch.Generator().manual_seed(4))
    c_sum = F.cosine_similarity(maccap.inference_tokens(big, reg, 1, 0.05, "sum", gens[0])[:, 0],
                                F.normalize(big, dim=-1) + reg[:, 0], dim=-1).mean()
    c_mean = F.cosine_similarity(maccap.inference_tokens(big, reg, 1, 0.05, "mean", gens[1])[:, 0],
                                 F.normalize(big, dim=-1) + reg[:, 0], dim=-1).mean()
    assert c_sum > c_mean                                                     # noise added before normalising


def test_rerank_picks_the_best_scored_sample():
    cands = [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"]]               # [S=3][B=3]
    scores = torch.tensor([[0.1, 0.9, 0.3], [0.5, 0.2, 0.1], [0.0, 0.0, 0.7]])   # [B, S]
    best, idx = maccap.rerank(cands, scores)
    assert best == ["d", "b", "i"] and idx.tolist() == [1, 0, 2]


def test_backbone_cls_attention(sandbox_clip):
    px = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f, attn = sandbox_clip.encode_images_with_attention(px)
        plain = sandbox_clip.encode_images(px)
    n = f.patches.shape[1]
    assert attn.shape == (2, n + 1, n + 1) and torch.allclose(attn.sum(-1), torch.ones(2, n + 1), atol=1e-5)
    assert torch.allclose(f.global_, plain.global_)                           # the hook changes nothing
    blk = sandbox_clip.model.visual.transformer.resblocks[-1]
    grabbed = {}
    h = blk.register_forward_hook(lambda m, a, k, out: grabbed.update(x=a[0] if a else k["q_x"], y=out),
                                  with_kwargs=True)
    with torch.no_grad():
        sandbox_clip.encode_images(px)
        h.remove()
        x = blk.ln_1(grabbed["x"])
        out, full = blk.attn(x, x, x, need_weights=True, average_attn_weights=False)     # [B, h, T, T]
        x1 = grabbed["x"] + blk.ls_1(out)                        # the block's own output from this attention
        y = x1 + blk.ls_2(blk.mlp(blk.ln_2(x1)))
    assert torch.allclose(y, grabbed["y"], atol=1e-5)             # the attention is the one the block ran
    assert torch.allclose(full.mean(1), attn, atol=1e-5)          # head-averaged
    pooled_clip = type(sandbox_clip)(sandbox_clip.model, sandbox_clip.preprocess, sandbox_clip.tokenizer,
                                     replace(sandbox_clip.cfg, pool_grid=4))
    with torch.no_grad():
        fp, ap = pooled_clip.encode_images_with_attention(px)
    assert fp.patches.shape[1] == 16 and ap.shape == (2, 17, 17)
    assert torch.allclose(ap.sum(-1), torch.ones(2, 17), atol=1e-5)
    assert torch.allclose(ap[:, 0, 0], attn[:, 0, 0])                         # CLS -> CLS is unchanged


def _tiny_captioner(vocab_size=12):
    from workbench.model.captioner import Captioner
    from workbench.config import CaptionerConfig
    torch.manual_seed(0)
    cfg = CaptionerConfig.preset("tiny", use_patches=False, mixup=False, noise_variance=0.0, dropout=0.0,
                                 max_length=5)
    return Captioner(cfg, vocab_size, 8, 8, 1)


class _Vocab:
    pad, bos, eos = 0, 1, 2

    def __len__(self):
        return 12


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_one_scst_step_moves_the_sample_log_probability_with_its_advantage(advantage):
    model, vocab = _tiny_captioner(), _Vocab()
    g = torch.randn(1, 8, generator=torch.Generator().manual_seed(1))
    words = torch.tensor([[5, 7, 9, 2, 0, 0]])                                # w w w EOS PAD PAD
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = float(sequence_logprob(model, words, g, None, None, vocab).detach())
    loss = scst_loss(sequence_logprob(model, words, g, None, None, vocab), torch.tensor([0.5 + advantage]),
                     torch.tensor([0.5]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = float(sequence_logprob(model, words, g, None, None, vocab))
    assert (after - before) * advantage > 0, (before, after)


def test_sequence_logprob_is_the_mean_up_to_eos():
    model, vocab = _tiny_captioner(), _Vocab()
    g = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
    words = torch.tensor([[5, 2, 0, 0], [5, 6, 7, 2]])
    lp = sequence_logprob(model, words, g, None, None, vocab)
    inp = torch.tensor([[1, 5, 2, 0], [1, 5, 6, 7]])
    logp = torch.log_softmax(model(inp, g), -1)
    want0 = (logp[0, 0, 5] + logp[0, 1, 2]) / 2
    want1 = (logp[1, 0, 5] + logp[1, 1, 6] + logp[1, 2, 7] + logp[1, 3, 2]) / 4
    assert torch.allclose(lp, torch.stack([want0, want1]), atol=1e-5)
    mem, pad = model.encode(g)
    s = sample(model, mem, pad, vocab, 5, n=3, generator=torch.Generator().manual_seed(0))
    assert s.shape[0] == 6 and s.shape[1] <= 6
    for row in s.tolist():                                                    # after EOS only PAD
        if 2 in row:
            assert all(w == 0 for w in row[row.index(2) + 1:])


def test_discriminator_learns_real_from_fake():
    torch.manual_seed(0)
    d = Discriminator(12, 0, width=16, layers=1, max_length=8)
    real = torch.tensor([[5, 6, 7, 2, 0, 0]] * 16)
    fake = torch.tensor([[9, 9, 9, 9, 9, 2]] * 16)
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    for _ in range(30):
        loss = d.loss(real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
    d.eval()
    assert float(torch.sigmoid(d(real[:1]))) > 0.9 > 0.1 > float(torch.sigmoid(d(fake[:1])))


def test_caption_entities_are_the_captions_nouns():
    words = ["circle", "star", "square"]
    bank = torch.eye(3, 4)
    ent = cmsa.caption_entities(["a red star left of a blue circle", "nothing here"], words, bank, 3)
    assert ent.shape == (2, 3, 4)
    assert torch.equal(ent[0, 0], bank[1]) and torch.equal(ent[0, 1], bank[0]) and not ent[0, 2].any()
    assert not ent[1].any()


def test_registry_blocks_groups_and_paper_presets():
    assert methods.get("cmsa").block == "unpaired" and "unpaired" in methods.BLOCKS
    assert methods.get("cmsa").reported.CIDEr == 100.2 and methods.get("maccap-lm").reported.CIDEr == 69.7
    assert methods.get("maccap").reported is None            # 69.7 is the frozen-OPT paper's: its row only
    assert set(methods.expand("maccap-ablation")) <= set(methods.names())
    assert methods.expand("cmsa-ablation")[0] == "cmsa"
    p = methods.get("maccap-s1", "paper_b32").options()
    assert p["noise_variance"] == 0.016 and p["decoder"] == "frozen-lm" and p["samples"] == 1
    from workbench.methods.prefix_lm import PrefixLMConfig
    assert PrefixLMConfig.preset(p["lm_preset"]).lm_model == "facebook/opt-1.3b"
    inference_rows = ("maccap", "maccap-s4", "maccap-s1", "maccap-cls", "maccap-code")
    assert len({methods.get(n).train_name() for n in inference_rows}) == 1      # one trained model serves them
    assert methods.get("maccap-1tok").train_name() != methods.get("maccap").train_name()
    with pytest.raises(ValueError, match="both off"):
        cmsa.CMSAConfig(clip_reward=False, fluency_reward=False)
    with pytest.raises(ValueError, match="aggregation='mean'"):
        maccap.MacCapConfig(aggregation="mean")


def _fit(m, exp, tmp_path, epochs=1):
    from workbench.config import CaptionerConfig, PCMConfig, TrainConfig
    model = m.build(exp, CaptionerConfig.preset("tiny"), PCMConfig.preset("tiny"), 0)
    tcfg = replace(m.train_config(TrainConfig.preset("tiny")), epochs=epochs, batch_size=4, run_dir=str(tmp_path))
    return model, m.fit(model, exp, tcfg, m.train_name() + "-s0", progress=False)


def test_frozen_lm_stays_frozen_and_the_adaptor_learns(tiny_exp, tmp_path):
    m = methods.get("maccap-lm")
    m.config = replace(m.config, lm_preset="tiny", samples=2)
    from workbench.config import CaptionerConfig, PCMConfig
    model = m.build(tiny_exp, CaptionerConfig.preset("tiny"), PCMConfig.preset("tiny"), 0)
    lm0 = {k: v.clone() for k, v in model.lm.state_dict().items()}
    ad0 = {k: v.clone() for k, v in model.mlp.state_dict().items()}
    model, hist = _fit(m, tiny_exp, tmp_path)
    assert all(torch.equal(v, model.lm.state_dict()[k]) for k, v in lm0.items())     # the LM never changes
    assert any(not torch.equal(v, model.mlp.state_dict()[k]) for k, v in ad0.items())
    assert not any(p.requires_grad for p in model.lm.parameters())
    model.train()
    assert not model.lm.training                                                      # no dropout in the LM either
    ev = m.eval_set(tiny_exp, "test")
    caps = ev.captions(model, m.vocabulary(tiny_exp), 2)
    assert len(caps) == 4 and ev.last_samples["scores"].shape == (4, 2)
    for i, c in enumerate(caps):                                                      # the kept one is the best
        best = int(ev.last_samples["scores"][i].argmax())
        assert c == ev.last_samples["candidates"][best][i]


@pytest.fixture(scope="module")
def tiny_opt(tmp_path_factory, tiny_exp):
    """A tiny random OPT and a word-level tokenizer, saved locally: the paper's from_pretrained path offline."""
    from tokenizers import Tokenizer, models as tm, pre_tokenizers
    from transformers import OPTConfig, OPTForCausalLM, PreTrainedTokenizerFast
    words = ["<pad>", "<s>", "</s>", "<unk>"] + tiny_exp.vocab.itos[4:]
    tok = Tokenizer(tm.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    out = tmp_path_factory.mktemp("opt")
    fast.save_pretrained(out)
    torch.manual_seed(0)
    OPTForCausalLM(OPTConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                             num_attention_heads=2, word_embed_proj_dim=16, max_position_embeddings=64,
                             pad_token_id=0, bos_token_id=1, eos_token_id=2)).save_pretrained(out)
    return out


def test_maccap_paper_path_on_a_tiny_opt(tiny_exp, tiny_opt, tmp_path):
    from workbench.methods.prefix_lm import TokenizerVocab
    m = methods.get("maccap", "paper_b32")
    m.config = replace(m.config, lm_model=str(tiny_opt), samples=2, lm_preset="tiny")
    vocab = m.vocabulary(tiny_exp)
    assert isinstance(vocab, TokenizerVocab) and vocab.bos == 1 and vocab.eos == 2
    from workbench.model.vocab import tokenize                        # lower-case words, punctuation dropped
    assert vocab.decode(vocab.encode(tiny_exp.captions[0])) == " ".join(tokenize(tiny_exp.captions[0]))
    model, hist = _fit(m, tiny_exp, tmp_path)
    assert np.isfinite(hist["loss"]).all()
    caps = m.eval_set(tiny_exp, "test").captions(model, vocab, 2)
    assert len(caps) == 4 and all(isinstance(c, str) for c in caps)


def test_cmsa_rl_changes_the_model_and_picks_on_val(tiny_exp, tmp_path):
    m = methods.get("cmsa")
    m.config = replace(m.config, rl_epochs=2, rl_batch=4, samples=2)
    model, hist = _fit(m, tiny_exp, tmp_path)
    assert len(hist["val_cider"]) == 2 and len(hist["init_val_cider"]) == 1
    assert len(hist["reward"]) == 4 and np.isfinite(hist["reward"]).all()
    assert all(r >= 0 for r in hist["reward_clip"]) and all(0 <= r <= 1 for r in hist["reward_fluency"])
    init = methods.get("cmsa-init")
    init_model, _ = _fit(init, tiny_exp, tmp_path)                                # the shared stage-1 checkpoint
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), init_model.state_dict().values()))
    again, hist2 = _fit(m, tiny_exp, tmp_path)                                    # resumed: nothing retrained
    assert hist2["reward"] == hist["reward"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_captioner_without_token_types():
    from workbench.model.captioner import Captioner
    from workbench.config import CaptionerConfig
    with pytest.raises(ValueError, match="token_type=True"):
        CaptionerConfig(mixup=True, token_type=False)
    cfg = CaptionerConfig.preset("tiny", mixup=False, token_type=False)
    model = Captioner(cfg, 12, 8, 8, 3)
    assert model.token_type is None and not any("token_type" in k for k in model.state_dict())
    out = model(torch.tensor([[1, 5, 6]]), torch.zeros(1, 8), torch.randn(1, 3, 8))
    assert out.shape == (1, 3, 12)
    assert methods.get("maccap").captioner_config(CaptionerConfig.preset("sandbox")).token_type is False


def test_prefix_captioner_cache_matches_the_full_forward(tiny_opt):
    """Incremental decoding through the LM's key/value cache gives the full teacher-forced forward's logits,
    also after the beams are reordered (rows swapped mid-sequence)."""
    from workbench.methods.prefix_lm import PrefixCaptioner, PrefixLMConfig, load_lm
    lm, _ = load_lm(str(tiny_opt), 12)
    torch.manual_seed(0)
    model = PrefixCaptioner(lm, 8, PrefixLMConfig.preset("tiny")).eval()
    words = torch.randint(4, 20, (3, 6))
    with torch.no_grad():
        prefix, pad = model.encode(None, torch.randn(3, 5, 8))
        full = model._logits(prefix, words)                                  # [3, 6, V]
        state = model.start(prefix, pad)
        for t in range(3):
            assert torch.allclose(model.step(words[:, t], state), full[:, t], atol=1e-5)
        assert state["past"].get_seq_length() == prefix.shape[1] + 3          # the prefix + 3 words are cached
        order = torch.tensor([2, 0, 1])                                      # a beam reorder
        state = model.reorder(state, order)
        swapped = model._logits(prefix[order], words[order])
        for t in range(3, 6):
            assert torch.allclose(model.step(words[order, t], state), swapped[:, t], atol=1e-5)


def test_samples_and_greedy_captions_of_different_lengths_stack():
    from workbench.methods.rl import pad_cat
    out = pad_cat([torch.tensor([[5, 6, 2, 0, 0]]), torch.tensor([[7, 2], [8, 2]])], pad=0)
    assert out.tolist() == [[5, 6, 2, 0, 0], [7, 2, 0, 0, 0], [8, 2, 0, 0, 0]]


def test_packed_windows_keep_every_token_and_start_captions_anywhere():
    from workbench.methods.prefix_lm import packed_windows
    vocab = Vocabulary.build([f"a {c} thing number {i}" for i, c in enumerate("red blue green pink".split() * 10)],
                             min_count=1, max_length=8)
    words = vocab.encode_batch([f"a {c} thing" + " number" * (i % 4) for i, c in
                                enumerate("red blue green pink".split() * 10)])          # [40, 10], padded
    real = words[words != vocab.pad]
    w = packed_windows(words, vocab.pad, 12, np.random.default_rng(0))
    assert w.shape == (len(real) // 12, 12) and not (w == vocab.pad).any()
    kept, all_ = torch.bincount(w.flatten(), minlength=len(vocab)), torch.bincount(real, minlength=len(vocab))
    assert (kept <= all_).all() and len(real) - w.numel() < 12  # every token once, only the last partial window cut
    starts = {int(j) for j in (w == vocab.bos).nonzero()[:, 1]}
    assert len(starts) >= 6                                     # captions begin at many positions, not only at 0
    w2 = packed_windows(words, vocab.pad, 12, np.random.default_rng(1))
    assert not torch.equal(w, w2)                               # each epoch reshuffles
    with pytest.raises(ValueError, match="length"):
        packed_windows(words, vocab.pad, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="packed=False"):
        packed_windows(words[:1], vocab.pad, 500, np.random.default_rng(0))


def test_packed_pretraining_is_another_lm(tiny_exp, tmp_path):
    from workbench.methods.prefix_lm import PrefixLMConfig, pretrain_lm
    caps = tiny_exp.captions
    cfg = PrefixLMConfig.preset("tiny", max_length=tiny_exp.vocab.max_length)
    assert cfg.packed                                            # the default: as real LMs are pretrained
    pretrain_lm(caps, tiny_exp.vocab, cfg, tmp_path, progress=False)
    pretrain_lm(caps, tiny_exp.vocab, replace(cfg, packed=False), tmp_path, progress=False)
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2, folders                            # two runs, two cached LMs


def test_the_sandbox_lm_recipe_keys_the_lm_rows():
    """Rows with an LM decoder carry the small LM's pretraining config in their key (a new recipe, a new row);
    other rows and named LMs (the paper profiles) do not."""
    for name in ("maccap-lm", "viecap-lm", "ifcap-lm"):
        m = methods.get(name)
        assert m.options()["sandbox_lm"]["packed"] is True, name
        tiny = replace(m.config, lm_preset="tiny")
        assert type(m)(tiny, name).options()["sandbox_lm"] != m.options()["sandbox_lm"]
        assert "sandbox_lm" not in methods.get(name, "paper_b32").options()
    assert methods.get("maccap-lm").train_name() != methods.get("maccap").train_name()
    for name in ("maccap", "viecap", "ifcap"):
        assert "sandbox_lm" not in methods.get(name).options()
