"""The synthesis engine: manifest, CLIPScores, settings guard, and completion after a real process kill."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from workbench.config import SynthesisConfig
from workbench.utils.paths import REPO_ROOT
from workbench.utils.io import sha256_file
from workbench.synthesis.engine import SynthesisEngine, caption_seed, load_pipeline, read_manifest, sandbox_captions

CAPTIONS = [f"caption number {i}: a red circle" for i in range(24)]


def _check_complete(out, n):
    recs = read_manifest(out)
    assert [r["caption_id"] for r in recs] == [str(i) for i in range(n)]        # exactly once, in order
    for r in recs:
        f = out / r["file"]
        assert sha256_file(f) == r["sha256"]
        assert Image.open(f).size == (64, 64)
        assert r["seed"] == caption_seed(0, r["caption_id"])
    assert len({r["file"] for r in recs}) == n
    return recs


def _engine(tiny_pipeline_dir, out, scorer=None, **over):
    cfg = SynthesisConfig.preset("tiny", model_id=str(tiny_pipeline_dir), out_dir=str(out), **over)
    return SynthesisEngine(load_pipeline(cfg, device="cpu"), cfg, scorer)


def test_manifest_and_clipscores(tiny_pipeline_dir, tiny_clip, tmp_path):
    out = tmp_path / "syn"
    recs = _engine(tiny_pipeline_dir, out, tiny_clip).run(CAPTIONS[:10], progress=False)
    assert len(recs) == 10
    _check_complete(out, 10)
    assert all(-1 <= r["clip_cos"] <= 1 and r["clip_score"] == pytest.approx(2.5 * max(r["clip_cos"], 0))
               for r in recs)
    assert len(list(out.glob("shard-*.jsonl"))) == 2                            # shard_size 8 -> 2 shards
    again = _engine(tiny_pipeline_dir, out, tiny_clip).run(CAPTIONS[:10], progress=False)
    assert again == recs                                                         # nothing regenerated


def test_corrupt_and_torn_entries_are_regenerated(tiny_pipeline_dir, tmp_path):
    out = tmp_path / "syn"
    recs = _engine(tiny_pipeline_dir, out).run(CAPTIONS[:6], progress=False)
    (out / recs[2]["file"]).write_bytes(b"not a png")                            # corrupt image
    (out / recs[4]["file"]).unlink()                                             # missing image
    with open(out / "shard-00000.jsonl", "a") as f:
        f.write('{"caption_id": "5", "trunc')                                    # torn line
    _engine(tiny_pipeline_dir, out).run(CAPTIONS[:6], progress=False)
    _check_complete(out, 6)


def test_a_changed_caption_is_drawn_again(tiny_pipeline_dir, tmp_path):
    """Same ids, another caption (a re-worded world): that image is made again for the new caption, the others kept."""
    out = tmp_path / "syn"
    first = _engine(tiny_pipeline_dir, out).run(CAPTIONS[:4], progress=False)
    changed = CAPTIONS[:2] + ["a blue square", CAPTIONS[3]]
    again = _engine(tiny_pipeline_dir, out).run(changed, progress=False)
    assert [r["caption"] for r in again] == changed
    assert read_manifest(out)[2]["caption"] == "a blue square" != first[2]["caption"]
    assert [again[i] for i in (0, 1, 3)] == [first[i] for i in (0, 1, 3)]
    _check_complete(out, 4)


def test_other_settings_are_refused(tiny_pipeline_dir, tmp_path):
    out = tmp_path / "syn"
    _engine(tiny_pipeline_dir, out).run(CAPTIONS[:2], progress=False)
    with pytest.raises(ValueError, match="other settings"):
        _engine(tiny_pipeline_dir, out, steps=3).run(CAPTIONS[:2], progress=False)


def test_duplicate_caption_ids_are_refused(tiny_pipeline_dir, tmp_path):
    with pytest.raises(ValueError, match="caption_ids must be unique"):
        _engine(tiny_pipeline_dir, tmp_path / "s").run(CAPTIONS[:2], caption_ids=["a", "a"], progress=False)


def test_rerun_after_kill_completes_exactly_once(tiny_pipeline_dir, tmp_path):
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps(CAPTIONS))
    out = tmp_path / "syn"
    cmd = [sys.executable, "-m", "workbench.synthesis.engine", "--preset", "tiny", "--model", str(tiny_pipeline_dir),
           "--out", str(out), "--captions", str(caps), "--batch-size", "2", "--no-clipscore"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shard = out / "shard-00000.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if shard.exists() and len(shard.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)                                              # a real kill, mid-run
    proc.wait()
    assert not (out / "manifest.jsonl").exists()
    partial = sum(len(p.read_text().splitlines()) for p in out.glob("shard-*.jsonl"))
    assert 4 <= partial < len(CAPTIONS)
    rerun = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    recs = _check_complete(out, len(CAPTIONS))
    images = np.stack([np.asarray(Image.open(out / r["file"])) for r in recs])
    assert images.std() > 0


def test_sandbox_captions_have_stable_ids():
    caps, ids, scenes = sandbox_captions("train", 7)
    assert len(caps) == 7 and ids[0] == "train-000000#0" and ids[5] == "train-000001#0"
    assert scenes[5].scene_id == "train-000001"
    caps1, ids1, _ = sandbox_captions("test", 3, per_scene=1)
    assert ids1 == ["test-000000#0", "test-000001#0", "test-000002#0"]


def test_processes_own_disjoint_shards(tiny_pipeline_dir, tmp_path):
    """Two concurrent jobs split the shards by hand (--process-index/--num-processes) and complete the set."""
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps(CAPTIONS[:20]))
    out = tmp_path / "syn"
    base = [sys.executable, "-m", "workbench.synthesis.engine", "--preset", "tiny", "--model", str(tiny_pipeline_dir),
            "--out", str(out), "--captions", str(caps), "--batch-size", "2", "--no-clipscore", "--num-processes", "2"]
    procs = [subprocess.Popen(base + ["--process-index", str(k)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in (0, 1)]
    logs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [log[1][-2000:] for log in logs]
    if not (out / "manifest.jsonl").exists():                                  # both finished at once: rerun
        subprocess.run(base[:-2], cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    recs = _check_complete(out, 20)
    by_shard = {}
    for r in recs:
        by_shard.setdefault(r["file"].split("/")[0], []).append(r["caption_id"])
    assert sorted(by_shard) == ["shard-00000", "shard-00001", "shard-00002"]    # 8 + 8 + 4 captions
    assert "synthesise [0]: 100%|██████████| 12/12" in logs[0][1]               # shards 0 and 2
    assert "synthesise [1]: 100%|██████████| 8/8" in logs[1][1]                 # shard 1
