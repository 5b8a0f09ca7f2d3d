"""The pipeline command end to end on the paper code path: tiny random CLIP and text-to-image backbones saved
locally and loaded back through their real loaders, real-format data (a Karpathy dataset_coco.json, a
dataset_flickr30k.json, real COCO photos) laid out as ``workbench.corpora.prepare`` lays it out."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from workbench.config import PipelineConfig, ReferenceSetConfig
from workbench.experiments.pipeline import Pipeline

HERE = Path(__file__).parent
FIX = HERE / "fixtures"
sys.path.insert(0, str(HERE))
from pipeline_job import config  # noqa: E402


@pytest.fixture(scope="module")
def layout(paper_layout):
    return paper_layout


def _config(root: Path, **over) -> PipelineConfig:
    return config(root, **over)


def test_pipeline_paper_path_end_to_end(layout, tiny_clip):
    cfg = _config(layout)
    rows = Pipeline(cfg, progress=False).run()                     # loads the CLIP and SD from their files
    out = layout / "out"
    state = json.loads((out / "pipeline.json").read_text())
    stages = {s["stage"]: s for s in state["stages"]}
    assert [s["stage"] for s in state["stages"]] == ["data", "synthesis", "features", "text features",
                                                     "concepts+vocabulary", "training", "captioner", "evaluation"]
    assert stages["data"]["train_captions"] == 25                     # train + restval: 5 images x 5 captions
    assert stages["synthesis"]["images"] == 25 and stages["training"]["val_images"] == 3
    assert [r["domain"] for r in rows] == ["in-domain", "cross-domain"]
    assert [(r["images"], r["images_present"], r["images_missing"]) for r in rows] == [(2, 2, 1), (2, 2, 1)]
    assert rows[0]["captions"] == 10 and rows[1]["captions"] == 10   # references *scored* (the files list 16 / 15)
    assert all(0.0 <= r["CIDEr"] and 0.0 <= r["CLIPScore"] <= 2.5 for r in rows)
    md = (out / "results.md").read_text()
    assert "in-domain: mscoco -> mscoco" in md and "| images scored |" in md
    written = json.loads((out / "captions-flickr30k.json").read_text())
    assert len(written) == 2 and all(set(r) == {"image_id", "caption"} for r in written)   # COCO results format
    from workbench.utils.paths import repo_path
    from workbench.evaluation.score import score_file                    # `workbench score` reproduces the table's CIDEr
    rescored = score_file(out / "captions-mscoco.json", repo_path(cfg.test_sets[0].captions_file))
    assert rescored["counts"]["matched"] == 2 and rescored["metrics"]["CIDEr"] == pytest.approx(rows[0]["CIDEr"])
    from workbench.model.saved import from_pretrained
    model, vocab, info = from_pretrained(out / "captioner")
    assert info["configs"]["pipeline"]["train_corpus"] == "mscoco"
    assert info["clip"]["config"]["pretrained"] == str(layout / "clip.safetensors")
    # a rerun finds every stage done: same images, same captioner, the cached results
    first = (out / "captioner" / "model.safetensors").read_bytes()
    again = Pipeline(cfg, progress=False).run()
    assert (out / "captioner" / "model.safetensors").read_bytes() == first
    assert [r["CIDEr"] for r in again] == [r["CIDEr"] for r in rows]


def test_reruns_keep_the_history_refresh_counts_skip_bad_files_and_move_stale_results_aside(layout, tmp_path):
    import shutil
    root = tmp_path / "L"
    shutil.copytree(layout, root, ignore=shutil.ignore_patterns("out*"))
    cfg = _config(root, n_train=10)
    first = Pipeline(cfg, progress=False).run()
    assert [r["images"] for r in first] == [2, 2]
    # an image arrives: the cached results are refreshed with the new count
    photo = next((FIX / "coco_images").iterdir())
    shutil.copy(photo, root / "mscoco" / "val2014" / "COCO_val2014_000000415746.jpg")
    second = Pipeline(cfg, progress=False).run()
    assert second[0]["images"] == 3 and second[0]["images_present"] == 3
    assert "| 3 | 16 |" in (root / "out" / "results.md").read_text()
    # a truncated JPEG is named, counted and skipped; the rest and the other set are scored
    bad = root / "flickr30k" / "images" / "1009434119.jpg"
    bad.write_bytes(bad.read_bytes()[:2000])
    with pytest.warns(UserWarning, match="1009434119.jpg"):
        third = Pipeline(cfg, progress=False).run()
    assert third[0]["status"] == third[1]["status"] == "scored"
    assert (third[1]["images"], third[1]["images_unreadable"]) == (1, 1) and third[1]["unreadable"][0].endswith(
        "1009434119.jpg")
    # dropping a test set moves its captions and the old tables aside
    Pipeline(replace(cfg, test_sets=cfg.test_sets[:1]), progress=False).run()
    out = root / "out"
    assert not (out / "captions-flickr30k.json").exists() and list(out.glob("stale/*/captions-flickr30k.json"))
    assert "flickr30k" not in (out / "results.md").read_text()
    # pipeline.json is a history: every run with its own stages and outcome
    state = json.loads((out / "pipeline.json").read_text())
    assert len(state["runs"]) == 4 and all(r["outcome"] == "finished" for r in state["runs"])
    assert [s["stage"] for s in state["runs"][0]["stages"]][-1] == "evaluation"
    # a failed run is recorded too, and keeps the earlier ones
    with pytest.raises(ValueError, match="pre-flight"):
        Pipeline(replace(cfg, overrides=(("train.batch_size", 1000),)), progress=False).run()
    state = json.loads((out / "pipeline.json").read_text())
    assert len(state["runs"]) == 5 and state["runs"][-1]["outcome"].startswith("failed: ValueError")


def test_a_missing_cross_domain_set_keeps_the_in_domain_result(layout):
    cfg = _config(layout, out_dir=str(layout / "out2"), n_train=10)
    gone = replace(cfg.test_sets[1], image_dir=str(layout / "nowhere"))
    coco = ReferenceSetConfig("mscoco", str(FIX / "coco_images"), str(FIX / "coco_captions_sample.json"))  # COCO format
    with pytest.warns(UserWarning, match="flickr30k skipped"):
        rows = Pipeline(replace(cfg, test_sets=(cfg.test_sets[0], gone, coco)), progress=False).run()
    assert rows[0]["status"] == "scored" and rows[1]["status"].startswith("missing")
    assert rows[2]["status"] == "scored" and (rows[2]["images"], rows[2]["images_missing"]) == (1, 1)
    assert "| missing |" in (layout / "out2" / "results.md").read_text()


def test_pipeline_under_a_launcher_two_processes(layout):
    """torch.distributed.run, 2 CPU processes (gloo): synthesis splits the shards, training the batches; the main
    process alone saves the captioner and scores the sets; the other returns no rows."""
    out = layout / "out-dp"
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    job = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(HERE / "pipeline_job.py"), str(layout), str(out)], env=env, capture_output=True,
                         text=True, timeout=900)
    assert job.returncode == 0, (job.stdout + job.stderr)[-4000:]
    assert json.loads((out / "rank0.json").read_text()) == {"rows": 2}
    assert json.loads((out / "rank1.json").read_text()) == {"rows": 0}
    shards = [json.loads(line)["index"] for f in sorted((out / "synthetic").glob("shard-*.jsonl"))
              for line in f.read_text().splitlines()]
    assert sorted(shards) == list(range(25))                            # every caption once, across processes
    state = json.loads((out / "pipeline.json").read_text())
    assert [s["stage"] for s in state["stages"]][-1] == "evaluation" and (out / "captioner" / "config.json").exists()


def test_the_sandbox_profile_runs_the_sandbox_study(monkeypatch):
    from workbench.experiments import runner, pipeline
    seen = []
    monkeypatch.setattr(runner, "main", lambda argv: seen.append(argv))
    monkeypatch.setattr(pipeline, "Pipeline", lambda *a, **k: pytest.fail("the sandbox must not run the paper path"))
    pipeline.main(["--profile", "sandbox"])
    assert seen == [["--preset", "sandbox"]]


def test_every_method_runs_on_the_corpus_through_the_one_runner(layout, monkeypatch):
    """Every registered method family trains on the real-format corpus (Karpathy: five captions an image, real
    COCO photos as val / test / unpaired images) through ``runner.fit_method`` and is scored in-domain and
    cross-domain through its own inference recipe; the leaderboard per protocol has every row."""
    from workbench import methods
    names = ("capdec", "decap", "ucc", "ucc+mean", "syntic", "maccap", "cmsa", "viecap", "ifcap", "pcm-viecap",
             "pcm-net")
    cfg = _config(layout, out_dir=str(layout / "out-methods"), n_train=15, methods=names, seeds=(1,),
                  unpaired_images=str(FIX / "coco_images"), overrides=(("train.epochs", 1),))
    from workbench.experiments import protocols
    loads = []
    real_load = protocols.load_test_set
    monkeypatch.setattr(protocols, "load_test_set", lambda *a, **k: loads.append(a[1].corpus) or real_load(*a, **k))
    rows = Pipeline(cfg, progress=False).run()
    assert sorted(loads) == ["flickr30k", "mscoco", "mscoco"]   # val once, each test set once for all 11 methods
    out = layout / "out-methods"
    assert {(r["model"], r["seed"]) for r in rows} == {(n, 1) for n in names}
    assert all(r["status"] == "scored" for r in rows) and {r["domain"] for r in rows} == {"in-domain", "cross-domain"}
    md = (out / "results.md").read_text()
    assert "### in-domain: mscoco -> mscoco" in md and "### cross-domain: mscoco -> flickr30k" in md
    assert "| text only | ifcap | 1 |" in md and "108.0 (IFCap" in md                 # reported beside the row
    assert (out / "captions-ucc-s1-flickr30k.json").exists() and (out / "captioners" / "capdec-s1").is_dir()
    state = json.loads((out / "pipeline.json").read_text())
    assert sum(s["stage"] == "training" for s in state["stages"]) == len(names)
    with pytest.raises(ValueError, match="is not registered"):
        methods.expand("capdec,nope")
    assert rows[0]["images"] == 2


def test_a_method_that_needs_unpaired_images_says_so(layout):
    cfg = _config(layout, out_dir=str(layout / "out-unpaired"), n_train=10, methods=("cmsa",),
                  overrides=(("train.epochs", 1),))
    with pytest.raises(ValueError, match="cmsa train or align on real images without their captions"):
        Pipeline(cfg, progress=False).run()
    cfg = replace(cfg, methods=("oracle",), unpaired_images=str(FIX / "coco_images"))
    with pytest.raises(ValueError, match="oracle train on real renders of the training captions' own scenes"):
        Pipeline(cfg, progress=False).run()


def test_bring_your_own_synthetic_images(layout, tmp_path):
    """An existing synthetic set instead of synthesis: verified, hashed and scored into the engine's manifest;
    a missing, a corrupt and a too-small file, a duplicate id, an id not in the corpus and an image the index
    never names are each counted and named; a rerun scores nothing again."""
    import numpy as np
    from PIL import Image

    from workbench.corpora.readers import load_caption_corpus
    caps, ids = load_caption_corpus(layout / "mscoco/karpathy/dataset_coco.json")
    caps, ids = caps[:10], ids[:10]
    folder = tmp_path / "sd"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = ["caption_id,file"]
    for k, cid in enumerate(ids[:8]):
        name = f"img_{k}.png"
        if k != 2:                                                       # k = 2: the index names a missing file
            Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(folder / name)
        rows.append(f"{cid},{name}")
    (folder / "img_3.png").write_bytes(b"not a png")                     # corrupt
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "img_4.png")       # too small
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(folder / "stray.png")       # never named
    rows += [f"{ids[0]},img_1.png", "999999#0,img_5.png"]                # a duplicate id; an id not in the corpus
    index = tmp_path / "index.csv"
    index.write_text("\n".join(rows) + "\n")
    cfg = _config(layout, out_dir=str(tmp_path / "out"), n_train=10, synthetic_images=str(folder),
                  synthetic_index=str(index), synthesis_model=str(tmp_path / "no-sd-needed"),
                  overrides=(("train.batch_size", 4),))
    Pipeline(cfg, progress=False).run()
    state = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    syn = next(s for s in state["stages"] if s["stage"] == "synthesis")
    rep = syn["report"]
    assert syn["images"] == rep["imported"] == 5                          # 8 indexed - missing, corrupt, too small
    assert rep["captions_without_image"] == 5 and rep["duplicate_ids"] == [ids[0]]
    assert rep["ids_not_in_corpus"] == ["999999#0"] and rep["images_not_in_index"] == ["stray.png"]
    assert rep["bad_images"] == {"img_2.png": "missing", "img_3.png": "unreadable (UnidentifiedImageError)",
                                 "img_4.png": "too small (20x20 < 64)"}
    manifest = [json.loads(x) for x in (tmp_path / "out" / "synthetic" / "manifest.jsonl").read_text().splitlines()]
    assert [r["caption_id"] for r in manifest] == [ids[k] for k in (0, 1, 5, 6, 7)]
    assert all(-1 <= r["clip_cos"] <= 1 and len(r["sha256"]) == 64 for r in manifest)
    train = next(s for s in state["stages"] if s["stage"] == "training")
    assert train["pairs"] == 5
    Pipeline(cfg, progress=False).run()                                   # resumable: nothing scored again
    again = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert next(s for s in again["stages"] if s["stage"] == "synthesis")["report"]["newly_scored"] == 0
