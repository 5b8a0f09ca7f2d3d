"""workbench.experiments.study: one front for notebooks 02-05 over the sandbox world and the paper pipeline."""
import json

import numpy as np
import pytest

from workbench.experiments import study
from workbench.config import PipelineConfig


def test_the_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("WORKBENCH_PROFILE", raising=False)
    assert study.open().sandbox
    monkeypatch.setenv("WORKBENCH_PROFILE", "paper_l14")
    s = study.open()
    assert not s.sandbox and s.stages.name == "paper_l14" and s.pipeline_cfg == PipelineConfig.preset("paper_l14")
    monkeypatch.setenv("WORKBENCH_PROFILE", "paper_b16")
    with pytest.raises(ValueError, match="WORKBENCH_PROFILE='paper_b16'"):
        study.open()


def test_pipeline_overrides_come_from_a_json_file(monkeypatch, tmp_path):
    path = tmp_path / "over.json"
    path.write_text(json.dumps({"n_train": 7, "test_sets": [{"corpus": "flickr30k", "image_dir": "x",
                                                             "captions_file": "y.json"}]}))
    monkeypatch.setenv("WORKBENCH_PIPELINE", str(path))
    cfg = study.open("paper_b32").pipeline_cfg
    assert cfg.n_train == 7 and cfg.test_sets[0].corpus == "flickr30k" and cfg.profile == "paper_b32"
    path.write_text(json.dumps({"n_trian": 7}))
    with pytest.raises(ValueError, match="n_trian"):
        study.open("paper_b32")
    monkeypatch.setenv("WORKBENCH_PIPELINE", str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match="WORKBENCH_PIPELINE="):
        study.open("paper_b32")


def test_the_sandbox_has_no_paper_pipeline():
    with pytest.raises(ValueError, match="has no paper pipeline"):
        study.open("sandbox").pipeline


def test_paper_real_images_are_read_from_their_files(paper_layout):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from pipeline_job import config
    s = study.Study("paper_b32", pipeline_cfg=config(paper_layout, out_dir=str(paper_layout / "study-out")))
    val, test = s.real_images("val", 2), s.real_images("test", 10)
    assert len(val) == 2 and len(test) == 2                          # in-domain test: 2 of 3 photos present
    thumbs = test.images[0:2]
    assert thumbs.shape == (2, 224, 224, 3) and thumbs.dtype == np.uint8 and test.images[1].shape == (224, 224, 3)
    assert all(len(c) >= 5 for c in test.captions) and test.first_captions()[0] == test.captions[0][0]
    caps, ids, scenes = s.training_captions(4)
    assert len(caps) == len(ids) == 4 and scenes is None and s.corpus(100) == s.training_captions(100)[0]
    assert s.real_images("val", 1).source_id != s.real_images("val", 2).source_id
