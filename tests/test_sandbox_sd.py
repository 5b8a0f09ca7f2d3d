"""The committed sandbox text-to-image model: loads offline, and makes recognisable but imperfect images."""
import json

from workbench.config import SynthesisConfig, WorldConfig
from workbench.utils.paths import data_dir
from workbench.synthesis.engine import load_pipeline

N = 48


def test_pipeline_folder_and_manifest():
    root = data_dir() / "sandbox_sd"
    for part in ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                 "tokenizer/tokenizer_config.json", "scheduler/scheduler_config.json"):
        assert (root / part).is_file(), part
    manifest = json.loads((root / "workbench_manifest.json").read_text())
    assert manifest["unet_final_loss"] < 0.5 and manifest["scaling_factor"] > 0
    assert manifest["config"]["decoder_steps"] >= 1000    # stage 3 (the decoder alone) ran in the same run
    assert 0 < manifest["decoder_final_loss"] < 0.05      # pixel MSE on [-1, 1] images (world v7: 0.012)
    assert manifest["clip_sha256"] == json.loads((data_dir() / "sandbox_clip.json").read_text())["sha256"]


def test_default_synthesis_is_faithful_where_text_to_image_is_not(sandbox_clip, tmp_path):
    """The default (layout-guided) synthesis on a small test sample: as faithful as real renders by the sandbox
    CLIP's judgement, far above pure text-to-image with the same model, and told from real above chance (README
    gives the 60-per-category profiles: single object 0.45 / colour 0.30 on val; 0.43 / 0.23 on test)."""
    from dataclasses import replace
    from workbench.synthesis import faithfulness as fa
    cfg = SynthesisConfig.preset("sandbox", out_dir=str(tmp_path / "syn"))
    world = WorldConfig.preset("sandbox")
    cats = fa.category_scenes(world, "test", N // 2)
    cats = {c: cats[c] for c in ("single_object", "colour", "two_objects")}
    pipe = load_pipeline(cfg, device="cpu")
    syn = fa.synthesise(pipe, cfg, cats)
    t2i = fa.synthesise(pipe, replace(cfg, layout_strength=None, out_dir=str(tmp_path / "t2i")), cats)
    real = fa.real_images(world, cats)
    p_syn, p_t2i, p_real = (fa.rates(fa.profile(sandbox_clip, x, cats)) for x in (syn, t2i, real))
    # world v7: the judge (the sandbox CLIP) sees a single thing 0.53 / its colour 0.40 on real val renders
    assert p_real["single_object"] >= 0.25 and p_real["colour"] >= 0.15, p_real
    assert p_syn["single_object"] >= 0.25 and p_syn["colour"] >= 0.15, p_syn
    assert p_syn["single_object"] > p_t2i["single_object"] + 0.15, (p_syn, p_t2i)
    assert p_syn["overall"] <= p_real["overall"] + 0.15, (p_syn, p_real)
    assert fa.synthetic_vs_real(sandbox_clip, syn, real)["probe_accuracy"] >= 0.75     # chance 0.5; val 0.89


def test_calibration_manifest_matches_the_preset():
    """The preset is the strength that ``choose_strength`` picks from the recorded val profiles."""
    from workbench.synthesis.faithfulness import choose_strength
    report = json.loads((data_dir() / "sandbox_synthesis.json").read_text())
    val = {float(k): v for k, v in report["val"].items()}
    assert report["chosen_strength"] == choose_strength(val, min_probe=report["min_probe"])
    assert (SynthesisConfig.preset("sandbox").layout_strength or 1.0) == report["chosen_strength"]
    # the synthetic-vs-real bound is recorded as met or not, never silently dropped (world v7: 0.91 at best, not met)
    assert report["probe_bound_met"] == (max(r["probe_accuracy"] for r in val.values()) >= 0.95)
    assert report["probe_bound_met"] == (val[report["chosen_strength"]]["probe_accuracy"] >= 0.95)
