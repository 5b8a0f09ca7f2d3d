"""Captioner, losses, decoding, evaluation and training (resume after a real kill)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from workbench.model.captioner import Captioner
from workbench.config import CaptionerConfig, PCMConfig
from workbench.model.decoding import beam_search, caption_images, generate, greedy
from workbench.model.losses import caption_loss, cxe_weights
from workbench.model.vocab import Vocabulary

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from train_job import build  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    model, vocab, train, val = build()
    return model.eval(), vocab, train, val


def test_vocabulary_round_trip(tmp_path):
    v = Vocabulary.build(["A red circle.", "two red stars", "a blue circle"], min_count=1, max_length=4)
    ids = v.encode("a red circle next to everything")
    assert len(ids) == 6 and ids[0] == v.bos and ids[5] == v.eos     # cut at 4 words
    assert v.decode(ids) == "a red circle <unk>"
    v.save(tmp_path / "v.json")
    w = Vocabulary.load(tmp_path / "v.json")
    assert w.itos == v.itos and w.encode("two blue stars") == v.encode("two blue stars")
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(["a b"], min_count=5)


def test_loss_with_unit_weights_is_plain_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, 11, generator=g)
    targets = torch.randint(1, 11, (4, 7), generator=g)
    targets[:, 5:] = 0                                                # padding
    plain = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1), ignore_index=0)
    assert torch.allclose(caption_loss(logits, targets, 0, torch.ones(4)), plain, atol=1e-6)
    assert torch.allclose(caption_loss(logits, targets, 0, None), plain, atol=1e-6)
    smooth = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1), ignore_index=0, label_smoothing=0.1)
    assert torch.allclose(caption_loss(logits, targets, 0, torch.ones(4), 0.1), smooth, atol=1e-6)
    # CXE weights: min(1, w * max(cos, 0)); a down-weighted sentence lowers its share of the loss
    assert torch.allclose(cxe_weights(torch.tensor([-0.2, 0.1, 0.3]), 4.0), torch.tensor([0.0, 0.4, 1.0]))
    w = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert torch.allclose(caption_loss(logits, targets, 0, w) * 20 / 15,
                          F.cross_entropy(logits[:3].reshape(-1, 11), targets[:3].reshape(-1), ignore_index=0))
    assert caption_loss(logits, targets, 0, None, focal_gamma=2.0) < plain      # focal term shrinks losses


def test_beam_one_equals_greedy_and_batched_equals_per_item(tiny):
    model, vocab, _, val = tiny
    memory, pad = model.encode(val.global_, val.tokens, val.patches, mode="inference")
    g = greedy(model, memory, pad, vocab, 20)
    b1 = beam_search(model, memory, pad, vocab, 20, beam=1)
    assert torch.equal(g, b1)
    b3 = beam_search(model, memory, pad, vocab, 20, beam=3)
    for i in range(len(memory)):
        one = beam_search(model, memory[i:i + 1], pad[i:i + 1], vocab, 20, beam=3)
        row = b3[i, :one.shape[1]]
        assert torch.equal(one[0], row) and (b3[i, one.shape[1]:] == vocab.pad).all()


def test_decoders_never_emit_unk_bos_or_pad_as_words(tiny):
    model, vocab, _, val = tiny
    memory, pad = model.encode(val.global_, val.tokens, val.patches, mode="inference")
    step = model.step

    def biased(last, state):                      # a model that would rather say <unk> than anything
        logits = step(last, state).clone()
        logits[:, vocab.unk] += 1e4
        logits[:, vocab.bos] += 1e4
        return logits
    model.step = biased
    try:
        for ids in (greedy(model, memory, pad, vocab, 8), beam_search(model, memory, pad, vocab, 8, beam=3)):
            words = [vocab.decode(row) for row in ids]
            assert all("<unk>" not in w and "<bos>" not in w for w in words), words
            assert not (ids == vocab.unk).any()
    finally:
        model.step = step


def test_inference_mode_appends_textual_tokens(tiny):
    model, vocab, _, val = tiny
    mem_train, _ = model.encode(val.global_, val.tokens, val.patches, mode="train")
    mem_inf, pad = model.encode(val.global_, val.tokens, val.patches, mode="inference")
    assert mem_train.shape[1] == 1 + 16 and mem_inf.shape[1] == 1 + 16 + model.pcm_cfg.m
    text_only = Captioner(CaptionerConfig.preset("tiny", use_patches=False, mixup=False), len(vocab), 16, 12, 16)
    assert text_only.encode(val.global_)[0].shape[1] == 1
    with pytest.raises(ValueError, match="mixup"):
        Captioner(CaptionerConfig.preset("tiny"), len(vocab), 16, 12, 16)


def test_caption_images_end_to_end(tiny_clip, tmp_path):
    from PIL import Image
    vocab = Vocabulary.build(["a red circle", "a blue star"], min_count=1)
    bank = F.normalize(tiny_clip.text_features(["circle", "star"]), dim=-1)
    n = (tiny_clip.image_size // 8) ** 2
    grid = tiny_clip.model.visual.grid_size[0] ** 2
    model = Captioner(CaptionerConfig.preset("tiny"), len(vocab), tiny_clip.embed_dim,
                      tiny_clip.model.visual.transformer.width, grid, PCMConfig.preset("tiny", k=2), bank)
    path = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (200, 20, 20)).save(path)
    caps = caption_images(model, vocab, tiny_clip, [str(path), Image.open(path)], beam=2)
    assert len(caps) == 2 and caps[0] == caps[1] and isinstance(caps[0], str) and n > 0


class _NoSpice:
    """Stands in for SPICE inside COCOEvalCap (its jars cannot be downloaded offline); other scorers untouched."""
    def method(self):
        return "SPICE (skipped)"

    def compute_score(self, gts, res):
        return 0.0, [0.0] * len(gts)


def test_coco_metrics_reproduce_pycocoevalcap(tmp_path, monkeypatch):
    import pycocoevalcap.eval as pe
    from pycocoevalcap.eval import COCOEvalCap
    from pycocotools.coco import COCO
    monkeypatch.setattr(pe, "Spice", _NoSpice)

    from workbench.evaluation.metrics import coco_metrics
    ann = HERE / "fixtures" / "coco_captions_sample.json"
    coco = COCO(str(ann))
    ids = coco.getImgIds()
    refs = {i: [a["caption"] for a in coco.imgToAnns[i]] for i in ids}
    hyps = {ids[0]: "a man riding a wave on top of a surfboard", ids[1]: "a plate of food on a table"}
    res_file = tmp_path / "res.json"
    res_file.write_text(json.dumps([{"image_id": i, "caption": c} for i, c in hyps.items()]))
    ev = COCOEvalCap(coco, coco.loadRes(str(res_file)))
    ev.params["image_id"] = ids
    ev.evaluate()
    ours = coco_metrics(refs, hyps, spice=False)
    for k in ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert ours[k] == pytest.approx(ev.eval[k], abs=1e-9), k
    assert "SPICE" in ours["SPICE_status"] or ours["SPICE_status"] == "not requested"
    with pytest.raises(ValueError, match="references"):
        coco_metrics(refs, {"nope": "x"})


def _run_job(out, epochs):
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    return subprocess.Popen([sys.executable, str(HERE / "train_job.py"), str(out), str(epochs)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_resume_after_kill_gives_identical_losses(tmp_path):
    full = _run_job(tmp_path / "full", 6)
    assert full.wait(timeout=300) == 0, full.stderr.read().decode()[-2000:]
    reference = json.loads((tmp_path / "full" / "losses.json").read_text())
    job = _run_job(tmp_path / "killed", 6)
    progress = tmp_path / "killed" / "job" / "progress.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if progress.exists() and json.loads(progress.read_text())["step"] >= 6:
            break
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    killed_at = json.loads(progress.read_text())["step"]
    assert 6 <= killed_at < len(reference), "the kill must land mid-run"
    again = _run_job(tmp_path / "killed", 6)
    assert again.wait(timeout=300) == 0, again.stderr.read().decode()[-2000:]
    resumed = json.loads((tmp_path / "killed" / "losses.json").read_text())
    assert len(resumed) == len(reference)
    assert resumed == pytest.approx(reference, abs=1e-6)
    best = json.loads((tmp_path / "killed" / "job" / "history.json").read_text())["best"]
    assert best["epoch"] >= 0 and best["cider"] >= 0


def test_generate_matches_caption_loop(tiny):
    model, vocab, _, val = tiny
    caps = generate(model, vocab, val.global_, val.tokens, val.patches, beam=3, batch_size=3)
    assert len(caps) == 8 and caps == generate(model, vocab, val.global_, val.tokens, val.patches, beam=3)


def test_incremental_decoding_equals_teacher_forcing(tiny):
    model, vocab, _, val = tiny
    memory, pad = model.encode(val.global_, val.tokens, val.patches, mode="inference")
    pad = pad.clone()
    pad[::2, -3:] = True                               # empty appended slots (as the pair rule leaves) in half the rows
    words = torch.randint(4, len(vocab), (len(memory), 7))
    words[:, 0] = vocab.bos
    full = model.decode(words, memory, pad)            # [B, 7, V]
    state = model.start(memory, pad)
    steps = torch.stack([model.step(words[:, i], state) for i in range(7)], dim=1)
    assert torch.allclose(steps, full, atol=1e-5)


def _reference_beam(model, memory, pad, vocab, beam, max_length=20):
    """Beam search by re-running the whole prefix through the teacher-forcing decoder (no caches)."""
    hyps = [([vocab.bos], 0.0, False)]
    for _ in range(max_length + 1):
        cands = []
        for seq, score, done in hyps:
            if done:
                cands.append((seq + [vocab.pad], score, True))
                continue
            logits = model.decode(torch.tensor([seq]), memory, pad)[0, -1].clone()
            logits[[vocab.unk, vocab.bos, vocab.pad]] = float("-inf")     # never words (decoding.no_specials)
            logp = torch.log_softmax(logits, -1)
            top = logp.topk(beam)
            cands += [(seq + [int(t)], score + float(v), int(t) == vocab.eos) for v, t in zip(top.values, top.indices)]
        hyps = sorted(cands, key=lambda h: -h[1])[:beam]
        if all(h[2] for h in hyps):
            break
    return max(hyps, key=lambda h: h[1])[0][1:]


@torch.no_grad()
def test_cached_beam_search_equals_uncached_reference(tiny):
    model, vocab, _, val = tiny
    memory, pad = model.encode(val.global_, val.tokens, val.patches, mode="inference")
    pad = pad.clone()
    pad[::2, -3:] = True
    ours = beam_search(model, memory, pad, vocab, 20, beam=3)
    for i in range(4):
        ref = _reference_beam(model, memory[i:i + 1], pad[i:i + 1], vocab, 3)
        assert ours[i, :len(ref)].tolist() == ref
