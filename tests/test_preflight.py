"""The pipeline's pre-flight check, its flags and --set, and the wrong-architecture checkpoint message."""
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from workbench.experiments import pipeline, preflight
from workbench.config import ClipConfig, ReferenceSetConfig
from workbench.config.stages import parse_set

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_job import config  # noqa: E402

FIX = Path(__file__).parent / "fixtures"
SANDBOX_CLIP = Path(__file__).parents[1] / "data" / "sandbox_clip.safetensors"


def test_a_prepared_layout_passes(paper_layout):
    rep = preflight.check(config(paper_layout, out_dir=str(paper_layout / "pf-ok")))
    assert rep.ok, rep.text()
    assert rep.facts["train_captions"] == 25 and rep.facts["concepts"] > 0 and rep.facts["train_steps"] > 0


def test_every_problem_is_listed_at_once_with_its_fix_before_any_stage(paper_layout, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad_val = ReferenceSetConfig("mscoco", str(tmp_path / "no-val-images"), config(paper_layout).val.captions_file)
    cfg = config(paper_layout, val=bad_val, clip_pretrained=str(SANDBOX_CLIP), synthesis_model=str(tmp_path),
                 out_dir=str(blocker / "out"),
                 overrides=(("concepts.min_count", 1000), ("train.batch_size", 1000), ("train.warmup_steps", 10)))
    rep = preflight.check(cfg)
    text = rep.text()
    for needle in ("min_count=1000", "--min-count", "exceeds the 25 training pairs", "--batch-size",
                   "val image folder", "is not a wb-tiny-vit checkpoint", "--clip-pretrained",
                   "not a diffusers pipeline folder", "--synthesis-model", "not writable", "--out"):
        assert needle in text, (needle, text)
    assert len(rep.errors) == 6
    with pytest.raises(ValueError, match="6 problem"):
        pipeline.Pipeline(cfg, progress=False).run()
    assert not (blocker.parent / "out").exists()


def test_a_warm_up_longer_than_the_run_is_reported_with_what_it_leaves(paper_layout):
    rep = preflight.check(config(paper_layout, out_dir=str(paper_layout / "pf-w"),
                                 overrides=(("train.warmup_steps", 10000),)))
    assert rep.ok and len(rep.warnings) == 1
    assert "10000 steps is longer than the run's" in rep.warnings[0][0] and "--warmup" in rep.warnings[0][1]


def test_train_captions_accept_coco_json_and_a_list_of_strings(paper_layout, tmp_path):
    listed = tmp_path / "captions.json"
    listed.write_text(json.dumps(["a man riding a horse", "a dog on a couch"] * 20))
    for path, n in ((FIX / "coco_captions_sample.json", None), (listed, 40)):
        rep = preflight.check(config(paper_layout, train_captions=str(path), out_dir=str(tmp_path / "o")))
        assert not any("training captions" in p for p, _ in rep.errors), rep.text()
        assert rep.facts["train_captions"] == (n or rep.facts["train_captions"]) > 0


def test_flags_and_set_reach_the_stage_configs_and_are_recorded(tmp_path):
    ap_args = ["--profile", "tiny", "--epochs", "3", "--min-count", "2", "--resolution", "32", "--n-val", "7",
               "--set", "pcm.k=3", "--set", "train.cxe=false", "--out", str(tmp_path / "o")]
    args = pipeline.build_parser().parse_args(ap_args)
    cfg = pipeline.config_from_args(args)
    assert cfg.stages.train.epochs == 3 and cfg.stages.concepts.min_count == 2 and cfg.n_val == 7
    assert (cfg.stages.synthesis.height, cfg.stages.synthesis.width) == (32, 32)
    assert cfg.stages.pcm.k == 3 and cfg.stages.train.cxe is False
    assert ["pcm.k", 3] in cfg.to_dict()["overrides"]                    # recorded in pipeline.json's config
    with pytest.raises(ValueError, match="has no field 'kk'"):
        parse_set("pcm.kk=3")
    with pytest.raises(ValueError, match="unknown stage 'model'"):
        parse_set("model.k=3")


def test_flags_the_sandbox_profile_cannot_use_are_refused():
    with pytest.raises(ValueError, match="takes no --n-train, --out"):
        pipeline.main(["--profile", "sandbox", "--out", "x", "--n-train", "5"])


def test_check_flag_exits_1_on_a_problem(paper_layout, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        pipeline.main(["--profile", "tiny", "--train-captions", str(tmp_path / "none.json"), "--check",
                       "--out", str(tmp_path / "o")])
    assert e.value.code == 1 and "none.json do not exist" in capsys.readouterr().out


def test_a_checkpoint_of_another_architecture_is_named_as_such():
    from workbench.backbones.clip import WeightsUnavailableError, load_clip
    with pytest.raises(WeightsUnavailableError, match="is not a wb-tiny-vit checkpoint: visual.conv1.weight"):
        load_clip(ClipConfig(model_name="wb-tiny-vit", pretrained=str(SANDBOX_CLIP)), device="cpu")


def test_root_moves_the_whole_layout(tmp_path):
    args = pipeline.build_parser().parse_args(["--profile", "tiny", "--root", str(tmp_path / "elsewhere")])
    cfg = pipeline.config_from_args(args)
    assert cfg.train_captions == str(tmp_path / "elsewhere" / "mscoco/karpathy/dataset_coco.json")
    assert all(t.image_dir.startswith(str(tmp_path / "elsewhere")) for t in (cfg.val, *cfg.test_sets))
