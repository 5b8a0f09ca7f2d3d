"""Notebooks 02-05 under ``WORKBENCH_PROFILE=paper_b32``: the same cells on the paper pipeline, here on the paper
layout fixture (real-format Karpathy files, real COCO photos, a tiny random CLIP and text-to-image pipeline saved
locally and loaded back through their real loaders), named by ``WORKBENCH_PIPELINE``."""
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from pipeline_job import config  # noqa: E402

NOTEBOOKS = ("02_synthesis", "03_patch_concepts", "04_training", "05_evaluation")


@contextmanager
def _paper_env(cfg, tmp_path):
    """WORKBENCH_PROFILE=paper_b32 with the pipeline config ``cfg`` (written to a file the profile reads)."""
    override = tmp_path / "pipeline.json"
    override.write_text(json.dumps(cfg.to_dict()))
    env = {"WORKBENCH_PROFILE": "paper_b32", "WORKBENCH_PIPELINE": str(override), "WORKBENCH_SMOKE": "1",
           "WORKBENCH_RUN_DIR": str(tmp_path / "figures"), "HF_HUB_OFFLINE": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def paper_env(paper_layout, tmp_path):
    out = tmp_path / "nb-out"
    with _paper_env(config(paper_layout, out_dir=str(out)), tmp_path):
        yield out


def _run(name: str) -> nbformat.NotebookNode:
    path = HERE.parent / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def _text(nb) -> str:
    return "\n".join(o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_notebooks_02_to_05_run_the_paper_profile(paper_env):
    out = paper_env
    texts = {name: _text(_run(name)) for name in NOTEBOOKS}
    # 02: the paper pipeline's synthesis (SD folder, scored by the profile's CLIP); the sandbox-only parts skipped
    assert "Study(profile='paper_b32'" in texts["02_synthesis"]
    assert "no layout knob" in texts["02_synthesis"]
    records = [json.loads(line) for line in (out / "synthetic" / "manifest.jsonl").read_text().splitlines()]
    assert len(records) >= 16 and all(r["caption"] for r in records)
    # 03: real test photos' features cached beside the synthetic ones, under the pipeline's feature root
    assert any(p.name.startswith("real-test-2-") for p in (out / "features").iterdir())
    # 04 trained in the pipeline's run folder; 05 ran the pipeline, which resumed that run, and wrote the tables
    state = json.loads((out / "pipeline.json").read_text())
    assert [s["stage"] for s in state["stages"]][-3:] == ["training", "captioner", "evaluation"]
    assert (out / "runs" / "pcm-net-s0" / "best.pt").exists()
    md = (out / "results.md").read_text()
    assert "in-domain: mscoco -> mscoco" in md and "cross-domain: mscoco -> flickr30k" in md
    assert "| images scored |" in md


def test_notebook_06_runs_the_paper_profile(paper_layout, tmp_path):
    """The leaderboard notebook on a paper profile: every method of its smoke list through the pipeline (the
    oracle, which trains on renders of the training captions, skipped and said), one board per test protocol."""
    out = tmp_path / "nb06"
    cfg = config(paper_layout, out_dir=str(out), n_train=15, unpaired_images=str(HERE / "fixtures" / "coco_images"),
                 overrides=(("train.epochs", 1),))
    with _paper_env(cfg, tmp_path):
        text = _text(_run("06_methods"))
    assert "Study(profile='paper_b32'" in text
    assert "skipped on paper_b32: oracle" in text
    assert "in-domain: mscoco -> mscoco" in text and "cross-domain: mscoco -> flickr30k" in text
    md = (out / "results.md").read_text()
    for name in ("capdec", "decap", "ucc+mean", "maccap", "syntic", "cmsa", "viecap", "ifcap", "pcm-net"):
        assert f"| {name} |" in md, name
