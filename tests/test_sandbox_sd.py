"""The committed sandbox text-to-image model: loads offline, and makes recognisable but imperfect images."""
import json

import numpy as np

from workbench.config import SynthesisConfig, WorldConfig
from workbench.data import load_sandbox_split
from workbench.paths import data_dir
from workbench.synthesis import SynthesisEngine, caption_seed, load_pipeline, sandbox_captions
from workbench.zeroshot import object_faithfulness

N = 48


def test_pipeline_folder_and_manifest():
    root = data_dir() / "sandbox_sd"
    for part in ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                 "tokenizer/tokenizer_config.json", "scheduler/scheduler_config.json"):
        assert (root / part).is_file(), part
    manifest = json.loads((root / "workbench_manifest.json").read_text())
    assert manifest["unet_final_loss"] < 0.5 and manifest["scaling_factor"] > 0


def test_synthetic_images_follow_captions_but_fall_short_of_real(sandbox_clip, tmp_path):
    """Colours mostly follow the caption; shapes often melt: far below real renders (issue 3 asks >= 60 %
    faithful; the committed model reaches ~20 % on 500 captions, see the closing note)."""
    cfg = SynthesisConfig.preset("sandbox", out_dir=str(tmp_path), batch_size=N)
    engine = SynthesisEngine(load_pipeline(cfg, device="cpu"), cfg)
    captions, ids, scenes = sandbox_captions("test", N, per_scene=1, n_objects=1)
    syn = engine.generate(captions, [caption_seed(cfg.seed, i) for i in ids])
    real = load_sandbox_split(WorldConfig.preset("sandbox"), "test", n=N, n_objects=1, progress=False).images
    f_syn = object_faithfulness(sandbox_clip, syn, scenes)
    f_real = object_faithfulness(sandbox_clip, real, scenes)
    assert f_syn["colour_ok"] >= 0.45, f_syn                                  # 0.66 on 500 captions
    assert f_real["faithful"] > f_syn["faithful"] + 0.3, (f_real, f_syn)      # 0.94 vs 0.20 on 500
    assert np.std(syn.astype(float)) > 10                                        # not blank images
