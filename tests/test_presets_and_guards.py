"""The paper presets and the guards that keep a run honest, each against the fault it prevents: the paper presets
(CXE w, Noam peak), the pair rule at small tau, tau validation, val_size, decoding's length limit, empty
references, SPICE's availability, the device a launcher gives."""
import io
import zipfile
from dataclasses import replace

import pytest
import torch

from workbench.model import pcm
from workbench.evaluation import spice
from workbench.config import PCMConfig, TrainConfig, noam_peak
from workbench.model.decoding import beam_search, greedy, sample
from workbench.evaluation.metrics import coco_metrics


def test_paper_presets_follow_the_paper_and_the_official_configs():
    assert TrainConfig.preset("paper_l14").cxe_w == 4.0          # the paper and the official L/14 config
    assert TrainConfig.preset("paper_b32").cxe_w == 2.5          # the official B/32 config (ALPHA 2.5)
    assert noam_peak(512, 10000) == pytest.approx(4.419e-4, rel=1e-3)
    for name in ("paper_b32", "paper_l14"):
        t = TrainConfig.preset(name)
        assert t.lr == pytest.approx(512 ** -0.5 * t.warmup_steps ** -0.5)
    with pytest.raises(ValueError, match="warmup_steps=0"):
        noam_peak(512, 0)


def test_pair_rule_ranks_the_affinity_even_when_the_softmax_underflows():
    g = torch.Generator().manual_seed(0)
    patches, bank = torch.randn(20, 16, 8, generator=g), torch.randn(30, 8, generator=g)
    global_ = torch.randn(20, 8, generator=g)
    res = pcm.pcm(global_, patches, bank, PCMConfig(k=3, m=5, tau=0.001))
    a = res.affinity * res.concepts.mask.unsqueeze(1)                           # [B, N, K]
    for i in range(20):
        top_pairs = a[i].reshape(-1).topk(5).indices // 3
        assert set(res.order[i][res.order[i] >= 0].tolist()) == set(top_pairs.tolist())


@pytest.mark.parametrize("tau", [0, -0.01, float("nan"), float("inf")])
def test_tau_is_validated_in_the_public_functions(tau):
    a, c = torch.rand(1, 4, 2), torch.randn(1, 2, 8)
    with pytest.raises(ValueError, match="tau="):
        pcm.textual_patches(a, c, tau)
    with pytest.raises(ValueError, match="temperature="):
        pcm.salient_concepts(torch.randn(1, 8), torch.randn(5, 8), 2, temperature=tau)
    with pytest.raises(ValueError, match="tau="):
        PCMConfig(tau=tau)


def test_val_size_limits_the_checkpoint_picking_images(tmp_path, monkeypatch):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from train_job import build
    from workbench.training import EvalSet, train_captioner
    model, vocab, train, val = build()
    seen = []
    orig = EvalSet.score
    monkeypatch.setattr(EvalSet, "score", lambda self, *a: seen.append(len(self.ids)) or orig(self, *a))
    cfg = replace(TrainConfig.preset("tiny"), epochs=1, val_size=3, run_dir=str(tmp_path))
    train_captioner(model, vocab, train, val, cfg, "v", progress=False)
    assert len(val.ids) == 8 and seen == [3]


class Babbler(torch.nn.Module):
    """A decoder that never wants to stop: word 5 always scores highest, EOS lowest."""
    def start(self, memory, pad, group=1):
        return {"n": memory.shape[0] * group}

    def step(self, last, state):
        logits = torch.zeros(last.shape[0], 8)
        logits[:, 5], logits[:, 2] = 5.0, -5.0
        return logits

    @staticmethod
    def reorder(state, index):
        return state


class Vocab:
    bos, eos, pad = 1, 2, 0


@pytest.mark.parametrize("decode", ["greedy", "beam", "sample"])
def test_decoding_stops_at_max_length_words(decode):
    mem, pad = torch.zeros(3, 1, 4), torch.zeros(3, 1, dtype=torch.bool)
    ids = {"greedy": lambda: greedy(Babbler(), mem, pad, Vocab, 4),
           "beam": lambda: beam_search(Babbler(), mem, pad, Vocab, 4, beam=2),
           "sample": lambda: sample(Babbler(), mem, pad, Vocab, 4, n=2)}[decode]()
    for row in ids.tolist():
        words = row[:row.index(Vocab.eos)] if Vocab.eos in row else row
        assert len(words) == 4 and Vocab.eos in row                   # 4 words, then EOS: never 5


def test_empty_references_are_refused_and_empty_captions_counted():
    with pytest.raises(ValueError, match=r"refs\[7\]"):
        coco_metrics({7: ["a dog", "  "]}, {7: "a dog"}, spice=False)
    with pytest.raises(ValueError, match=r"refs\[7\]"):
        coco_metrics({7: []}, {7: "a dog"}, spice=False)
    with pytest.warns(UserWarning, match="1 of 2 captions are empty"):
        out = coco_metrics({1: ["a red circle"], 2: ["a blue star"]}, {1: "a red circle", 2: ""}, spice=False)
    assert out["empty_captions"] == 1 and out["CIDEr"] > 0


def test_java_versions_and_the_jvm_flag(monkeypatch):
    assert spice.java_major('openjdk version "1.8.0_392"') == 8
    assert spice.java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert spice.java_major('java version "11"') == 11
    monkeypatch.delenv("JDK_JAVA_OPTIONS", raising=False)
    for major, flagged in ((17, True), (11, False)):
        monkeypatch.setattr(spice, "java_version", lambda major=major: major)
        with spice.jvm_options():
            import os
            assert (spice.ADD_OPENS in os.environ.get("JDK_JAVA_OPTIONS", "")) == flagged
        assert "JDK_JAVA_OPTIONS" not in os.environ


def test_spice_is_attempted_and_says_how_to_enable_it(monkeypatch, tmp_path):
    calls = []

    def offline():
        calls.append(1)
        raise OSError("Name or service not known")
    import pycocoevalcap.spice.get_stanford_models as gsm
    monkeypatch.setattr(gsm, "get_stanford_models", offline)
    monkeypatch.setattr(spice, "java_version", lambda: 17)
    monkeypatch.setattr(spice, "_fetch_failed", None)
    ok, why = spice.status(lib=tmp_path)
    assert not ok and calls == [1] and "workbench.evaluation.spice --install" in why and "download failed" in why
    assert spice.status(lib=tmp_path)[0] is False and calls == [1]            # one attempt per process
    monkeypatch.setattr(spice, "java_version", lambda: None)
    assert "no `java`" in spice.status(lib=tmp_path)[1]


def test_spice_jars_install_from_the_corenlp_zip(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for jar in spice.JARS:
            z.writestr(f"{spice.CORENLP}/{jar}", b"jar " + jar.encode())
    (tmp_path / "corenlp.zip").write_bytes(buf.getvalue())
    lib = tmp_path / "lib"
    lib.mkdir()
    spice.install_jars(tmp_path / "corenlp.zip", lib)
    assert sorted(p.name for p in lib.iterdir()) == sorted(spice.JARS)
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("x.txt", "nothing")
    with pytest.raises(ValueError, match="zip_path="):
        spice.install_jars(tmp_path / "bad.zip", lib)


def test_auto_device_is_the_process_gpu_under_a_launcher(monkeypatch):
    from workbench.utils.device import resolve_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == torch.device("cuda:3")        # not every process on GPU 0
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device("auto") == torch.device("cuda")
