"""Carry-over rules: each returns the paper's own value on the paper's backbone, keeps its invariant on another,
and the presets read them."""
import math

import pytest
import torch

from workbench import methods
from workbench.config import CaptionerConfig, ConceptConfig, PCMConfig, TrainConfig
from workbench.config import carryover as R


def test_noise_rule_returns_capdec_on_b32_and_keeps_the_expected_cosine():
    assert R.noise_variance(R.VIT_B32) == pytest.approx(0.016)
    assert R.expected_noise_cosine(0.016, 512) == pytest.approx(0.3298, abs=1e-4)
    sandbox = R.Backbone("s", 128, 800.0, 64)
    v = R.noise_variance(sandbox)
    assert v == pytest.approx(0.064)
    assert R.expected_noise_cosine(v, 128) == pytest.approx(R.expected_noise_cosine(0.016, 512))
    assert R.noise_variance(R.VIT_L14) == pytest.approx(0.016 * 512 / 768)


def test_expected_cosine_matches_a_draw():
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(4000, 128, generator=gen), dim=-1)
    noisy = torch.nn.functional.normalize(x + torch.randn(x.shape, generator=gen) * 0.064 ** 0.5, dim=-1)
    assert float((x * noisy).sum(-1).mean()) == pytest.approx(R.expected_noise_cosine(0.064, 128), abs=0.01)


def test_noise_to_gap_ratio():
    # CapDec on B/32: noise norm 2.86 against a paired distance sqrt(2 - 2 * 0.33) = 1.16
    assert R.noise_to_gap(0.016, 512, 0.33) == pytest.approx(math.sqrt(8.192) / math.sqrt(1.34))


def test_temperature_rule_in_units_of_the_clip_temperature():
    assert R.temperature(R.VIT_B32) == pytest.approx(0.01)
    assert R.temperature(R.Backbone("s", 128, 800.0, 64)) == pytest.approx(0.01 / 8)
    assert R.temperature(R.VIT_B32, R.SYNTIC_TAU_FLICKR) == pytest.approx(1 / 80)
    assert R.carried_temperature(1 / 800) == pytest.approx(1 / 800)


def test_pcm_sizes_are_the_papers_on_its_backbone_and_shares_elsewhere():
    assert R.pcm_k(400) == 5 and R.pcm_m(R.VIT_B32) == 5
    assert R.pcm_m(R.VIT_L14, R.PCM_NET_L14_M) == 5                 # PCM-Net's own L/14 config
    assert R.pcm_m(R.Backbone("s", 128, 800.0, 64)) == 7          # 5/49 of 64 patches
    assert R.pcm_k(18) == 2                                        # the floor: Eq. 3 needs two concepts
    assert R.pcm_k(1) == 1                                         # never more than the bank
    with pytest.raises(ValueError, match="bank_size"):
        R.pcm_k(0)


def test_cxe_carry_is_the_identity_on_paper_backbones_and_keeps_ranks_elsewhere():
    cos = torch.tensor([0.40, 0.41, 0.399, 0.415, 0.405])
    assert torch.equal(R.cxe_cosines(cos, R.VIT_B32), cos)
    assert torch.equal(R.cxe_cosines(cos, R.VIT_L14), cos)
    out = R.cxe_cosines(cos, R.Backbone("s", 128, 800.0, 64))
    assert torch.equal(torch.argsort(out), torch.argsort(cos))
    big = R.cxe_cosines(torch.rand(5000) * 0.02 + 0.40, R.Backbone("s", 128, 800.0, 64))
    assert float(big.mean()) == pytest.approx(0.330, abs=0.002)
    assert float(big.std()) == pytest.approx(R.VIT_B32.paired_cos_std, rel=0.05)
    # the B/32 official w = 2.5 then down-weights pairs unequally (it could not before: every weight was 1)
    before = R.cxe_weight_profile(torch.rand(5000) * 0.02 + 0.40, 4.0)
    after = R.cxe_weight_profile(big, 2.5)
    assert before["share_down_weighted"] == 0.0
    assert after["share_down_weighted"] > 0.9 and after["min_weight"] < after["median_weight"] - 0.05


def test_std_from_range():
    assert R.std_from_range(-1.0, 1.0, 3) == pytest.approx(1 / 0.6745, rel=0.01)  # n = 3: the quartiles
    with pytest.raises(ValueError, match="n=1"):
        R.std_from_range(0.2, 0.4, 1)
    assert 0.028 < R.VIT_B32.paired_cos_std < 0.034


def test_presets_read_the_rules():
    sb = R.sandbox_backbone()
    assert sb.dim == 128 and sb.logit_scale == 800.0 and sb.n_patches == 64
    assert CaptionerConfig.preset("sandbox").noise_variance == pytest.approx(R.noise_variance(sb) * R.noise_multiple())
    assert R.noise_multiple() in R.NOISE_MULTIPLES                 # a point of the swept grid
    if "noise" in R.selections():                                  # the committed choice is its table's val best
        table = R.selections()["noise"]["table"]
        assert max(table, key=lambda r: r["val_CIDEr"])["multiple"] == R.noise_multiple()
    assert CaptionerConfig.preset("paper_b32").noise_variance == pytest.approx(0.016)
    pcm = PCMConfig.preset("sandbox")
    assert (pcm.k, pcm.m) == (R.pcm_k(R.SANDBOX_BANK_SIZE), R.pcm_m(sb))
    assert pcm.tau == pcm.concept_temperature == R.temperature(sb)
    assert PCMConfig.preset("paper_b32") == PCMConfig(k=5, m=5, tau=0.01, concept_temperature=0.01)
    assert PCMConfig.preset("paper_l14") == PCMConfig(k=5, m=5, tau=0.01, concept_temperature=0.01)
    assert CaptionerConfig.preset("paper_l14").noise_variance == pytest.approx(0.016)   # PCM-Net's L/14 config
    assert TrainConfig.preset("paper_b32").cxe_w == 2.5 and TrainConfig.preset("paper_l14").cxe_w == 4.0
    assert TrainConfig.preset("sandbox").cxe_w == R.cxe_w(2.5)                 # picked on val, or 2.5 without a sweep
    if "cxe_w" in R.selections():
        table = R.selections()["cxe_w"]["table"]
        assert max(table, key=lambda r: r["val_CIDEr"])["cxe_w"] == R.cxe_w(2.5) and R.cxe_w(2.5) in R.CXE_W_GRID
    assert methods.get("capdec", "paper_b32").config.noise_variance == pytest.approx(0.016)
    assert methods.get("maccap", "paper_l14").config.noise_variance == pytest.approx(R.noise_variance(R.VIT_L14))


def test_sandbox_bank_size_is_the_worlds():
    """SANDBOX_BANK_SIZE (which K is carried from) = the nouns at the sandbox min count in the ablation's captions."""
    from workbench.features.concepts import count_nouns, select_vocabulary
    from workbench.config import AblationConfig, WorldConfig
    from workbench.synthesis.engine import sandbox_captions
    n = AblationConfig().n_train                                  # 4,000 scenes (the full preset's)
    caps, _, _ = sandbox_captions("train", n * 5, per_scene=5, world=WorldConfig.preset("sandbox"))
    words = select_vocabulary(count_nouns(caps), ConceptConfig.preset("sandbox"))
    assert len(words) == R.SANDBOX_BANK_SIZE


def test_max_length_is_the_papers_on_mscoco_and_cuts_its_share_elsewhere():
    h = R.caption_lengths()
    coco = h["mscoco"]["histogram"]
    assert R.max_length(coco, coco) == 20                    # the paper's own value on the paper's corpus
    share = R.cut_share(coco, 20)
    assert 0.002 < share < 0.01                              # MSCOCO: 0.5 % of Karpathy val captions are longer
    n = R.sandbox_max_length()
    sandbox = h["sandbox"]["histogram"]
    assert R.cut_share(sandbox, n) <= share < R.cut_share(sandbox, n - 1)
    assert CaptionerConfig.preset("sandbox").max_length == n
    assert CaptionerConfig.preset("paper_b32").max_length == 20
    # a corpus twice as long carries a max length about twice the paper's
    doubled = {str(2 * int(k)): v for k, v in coco.items()}
    assert 38 <= R.max_length(doubled, coco) <= 42
    with pytest.raises(ValueError, match="histogram is empty"):
        R.cut_share({}, 20)


def test_sandbox_length_histogram_is_the_worlds():
    from workbench.config import WorldConfig
    from workbench.experiments.calibrate import sandbox_length_histogram
    assert sandbox_length_histogram(WorldConfig.preset("sandbox")) == R.caption_lengths()["sandbox"]["histogram"]


def test_derived_lists_every_rule():
    rows = R.derived(R.sandbox_backbone(), bank_size=18)
    names = " ".join(r["name"] for r in rows)
    for word in ("noise", "temperature", "PCM M", "PCM K", "CXE"):
        assert word in names
    assert all(r["value"] is not None and r["invariant"] for r in rows)


def test_method_override_spec():
    m = methods.get("capdec[noise_variance=0.016]")
    assert m.config.noise_variance == 0.016 and m.name == "capdec[noise_variance=0.016]"
    assert methods.file_stem(m.name) == "capdec_noise_variance=0.016"
    two = methods.expand("capdec[noise_variance=0.016],syntic+fo[fo_lr=0.001 fo_epochs=5]")
    assert two == ("capdec[noise_variance=0.016]", "syntic+fo[fo_lr=0.001 fo_epochs=5]")
    assert methods.get(two[1]).config.fo_epochs == 5
    with pytest.raises(ValueError, match="not fields"):
        methods.get("capdec[lr=1]")
    with pytest.raises(ValueError, match="field=value"):
        methods.get("capdec[0.016]")


def test_selections_made_on_another_clip_are_left_out(tmp_path, monkeypatch):
    """A val choice measures one world and CLIP: after a retrain the presets fall back to the carried values."""
    import json
    monkeypatch.setattr(R, "SELECTIONS", tmp_path / "sandbox_selections.json")
    (tmp_path / "sandbox_clip.json").write_text(json.dumps({"sha256": "new"}))
    (tmp_path / "sandbox_selections.json").write_text(json.dumps({
        "noise": {"multiple": 0.0625, "clip_sha256": "old"}, "cxe_w": {"cxe_w": 3.0, "clip_sha256": "new"},
        "fo": {"fo_lr": 0.01, "fo_epochs": 5}}))
    R.selections.cache_clear()
    try:
        with pytest.warns(UserWarning, match="noise, fo picked on another sandbox CLIP"):
            assert set(R.selections()) == {"cxe_w"}
        assert R.noise_multiple() == 1.0 and R.cxe_w(2.5) == 3.0 and R.fo_budget() == R.FO_BUDGETS[0]
    finally:
        R.selections.cache_clear()


def test_select_runs_a_sweep_after_the_sweep_whose_pick_it_reads(tmp_path, monkeypatch):
    import json
    from workbench.experiments import experiment, runner, selection
    from workbench.backbones import clip as clip_mod
    assert selection.stages(["cxe_w", "fo", "noise"]) == [["noise", "fo"], ["cxe_w"]]
    assert selection.stages(["cxe_w"]) == [["cxe_w"]] and selection.stages(["fo", "noise"]) == [["noise", "fo"]]
    monkeypatch.setattr(R, "SELECTIONS", tmp_path / "sandbox_selections.json")
    monkeypatch.setattr(selection, "SELECTIONS", tmp_path / "sandbox_selections.json")
    seen = []

    def fake_run(cfg, clip, data, jobs=1):                 # val CIDEr: the last sweep point is best
        seen.append((set(R.selections()), cfg.variants))
        return [{"model": v, "best_val_CIDEr": i / 10, "CIDEr": i / 10} for i, v in enumerate(cfg.variants)]
    monkeypatch.setattr(runner, "run_ablation", fake_run)
    monkeypatch.setattr(clip_mod, "load_clip", lambda cfg: None)
    monkeypatch.setattr(experiment, "prepare_sandbox", lambda cfg, clip: None)
    R.selections.cache_clear()
    try:
        report = selection.run(["cxe_w", "noise"])
        assert [s for s, _ in seen] == [set(), {"noise"}]        # cxe_w's rows were built after noise's pick
        assert all(v.startswith("capdec[") for v in seen[0][1])
        assert report["noise"]["choice"]["multiple"] == R.NOISE_MULTIPLES[-1]     # the val-best point, written
        assert set(json.loads((tmp_path / "sandbox_selections.json").read_text())) == {"noise", "cxe_w"}
    finally:
        R.selections.cache_clear()


def test_the_budget_is_read_off_the_oracles_curve(tmp_path, monkeypatch):
    """``select --sweep budget``: the epochs where the oracle's val curve flattens (training.plateau_epoch), each
    compared row's share of its best reached within them, written to the selections the sandbox preset reads; a
    curve still rising at its end is refused with the length to try."""
    import json
    from workbench.experiments import experiment, runner, selection
    from workbench.backbones import clip as clip_mod
    from workbench.training import plateau_epoch
    assert selection.stages(["budget", "cxe_w", "fo", "noise"]) == [["noise", "fo"], ["cxe_w"], ["budget"]]
    oracle = [min(e, 20) / 20 for e in range(1, 41)]               # rises to epoch 20, then flat
    late = [min(e, 30) / 40 for e in range(1, 41)]                 # a row still rising after the oracle's plateau
    choice = selection.budget_choice({"oracle": {"val_cider": oracle}, "base": {"val_cider": late}}, 40)
    assert choice["epochs"] == plateau_epoch(oracle) and 20 <= choice["epochs"] <= 27
    base = next(t for t in choice["table"] if t["method"] == "base")
    assert base["best_epoch"] == 30 and base["reached"] == pytest.approx(choice["epochs"] / 30)
    with pytest.raises(ValueError, match="curve_epochs=40.*--curve-epochs, e.g. 80"):
        selection.budget_choice({"oracle": {"val_cider": [e / 40 for e in range(1, 41)]}}, 40)

    monkeypatch.setattr(R, "SELECTIONS", tmp_path / "sandbox_selections.json")
    monkeypatch.setattr(selection, "SELECTIONS", tmp_path / "sandbox_selections.json")
    asked = {}

    def fake_curves(cfg, clip, exp, names, epochs, seed, jobs):
        asked.update(names=names, epochs=epochs)
        return {m: {"val_cider": oracle} for m in names}
    monkeypatch.setattr(runner, "learning_curves", fake_curves)
    monkeypatch.setattr(clip_mod, "load_clip", lambda cfg: None)
    monkeypatch.setattr(experiment, "prepare_sandbox", lambda cfg, clip: None)
    R.selections.cache_clear()
    try:
        report = selection.run(["budget"], curve_epochs=40)
        assert asked == {"names": runner.BUDGET_METHODS, "epochs": 40}
        saved = json.loads((tmp_path / "sandbox_selections.json").read_text())["budget"]
        assert saved["epochs"] == report["budget"]["choice"]["epochs"] == choice["epochs"]
        assert R.train_budget(24) == choice["epochs"]
        monkeypatch.setenv("WORKBENCH_SCALE", "full")
        monkeypatch.delenv("WORKBENCH_SMOKE", raising=False)
        from workbench.config import TrainConfig
        assert TrainConfig.preset("sandbox").epochs == choice["epochs"]       # the preset reads the pick
        assert "**budget**" in selection.markdown(report)
    finally:
        R.selections.cache_clear()
