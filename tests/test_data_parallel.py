"""Data-parallel captioner training: sharding of every epoch, averaged gradients, main-process-only writes.

The end-to-end test launches 2 CPU processes (gloo) with torch.distributed.run on the tiny job of dp_job.py
and compares them with 1 process at twice the per-process batch on the same data and seed.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.training import shard, step_seed

HERE = Path(__file__).parent
N, SEED, EPOCHS = 48, 0, 2                  # dp_job: the 48 train_job pairs, TrainConfig "tiny" seed, 2 epochs


def test_two_shards_of_b_make_one_batch_of_2b():
    order = np.random.default_rng([SEED, 1]).permutation(N)
    for b in range(N // 10):
        two = [shard(order, b, 5, r, 2) for r in range(2)]
        assert np.array_equal(np.concatenate(two), shard(order, b, 10))
    with pytest.raises(ValueError, match="process_index=2"):
        shard(order, 0, 5, 2, 2)


def test_step_seed_keeps_the_single_process_seed_and_differs_per_process():
    assert step_seed(3, 17) == 3 * 1_000_003 + 17                # the seed single-process resume relies on
    seeds = {step_seed(0, t, r) for t in range(1000) for r in range(8)}
    assert len(seeds) == 8000


def _launch(out: Path, batch_size: int, processes: int, stop_after=None, script: str = "dp_job.py") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    job = [str(HERE / script), str(out), str(batch_size), str(EPOCHS)] + ([str(stop_after)] if stop_after else [])
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    return subprocess.Popen([sys.executable] + (launcher if processes > 1 else []) + job, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _wait(job: subprocess.Popen) -> None:
    try:
        text, _ = job.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)                             # the launcher and its workers
        raise
    out = text.decode()
    first = out.find("Traceback")                                     # the first process to fail, then the end
    assert job.returncode == 0, (out[first:first + 3000] + "\n...\n" if first >= 0 else "") + out[-2000:]


def _weights(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state.get("model", state)                                 # last.pt holds more than the weights


def _assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=0, msg=k)


def test_two_processes_equal_one_with_twice_the_batch(tmp_path):
    # Every train_job caption has 3 words, so both halves of a global batch hold the same number of tokens and
    # the mean of the 2 processes' token-mean losses (and gradients) equals the 1-process token mean.
    two, one = tmp_path / "two", tmp_path / "one"
    jobs = [_launch(two, 5, 2, stop_after=3), _launch(one, 10, 1)]    # 2 x 5 = 10 per step: 4 steps, 8 left over
    for job in jobs:
        _wait(job)
    logs = [json.loads((two / f"rank{r}.json").read_text()) for r in range(2)]
    single = json.loads((one / "rank0.json").read_text())
    assert [log["world"] for log in logs] == [2, 2] and single["world"] == 1

    # (1) each epoch: disjoint items per process, whose union is the epoch's (the 1-process batches)
    per_epoch = N // 10
    assert len(logs[0]["seen"]) == len(logs[1]["seen"]) == len(single["seen"]) == per_epoch * EPOCHS
    for step, batch in enumerate(single["seen"]):
        order = np.random.default_rng([SEED, step // per_epoch]).permutation(N)
        assert batch == shard(order, step % per_epoch, 10).tolist()
        halves = [log["seen"][step] for log in logs]
        assert not set(halves[0]) & set(halves[1])
        assert halves[0] + halves[1] == batch                          # process r: the r-th chunk of the global batch

    # (2) the same training: losses, val CIDEr, the last weights and the best weights every process ends with
    assert logs[0]["history"] == logs[1]["history"]                    # every process returns the same history
    np.testing.assert_allclose(logs[0]["history"]["loss"], single["history"]["loss"], atol=1e-5)
    np.testing.assert_allclose(logs[0]["history"]["val_cider"], single["history"]["val_cider"], atol=1e-6)
    _assert_close(_weights(two / "runs/job/last.pt"), _weights(one / "runs/job/last.pt"))
    best = _weights(two / "runs/job/best.pt")
    for r in range(2):
        _assert_close(_weights(two / f"weights{r}.pt"), best)
    _assert_close(best, _weights(one / "runs/job/best.pt"))

    # (3) only rank 0 wrote the run folder (the resume after stop_after included)
    assert logs[1]["writes"] == []
    files = {p.name for p in (two / "runs/job").iterdir()}
    assert files == {"last.pt", "best.pt", "progress.json", "history.json"}
    assert set(logs[0]["writes"]) == files
    assert json.loads((two / "runs/job/history.json").read_text())["num_processes"] == 2


def test_a_non_pcm_method_two_processes_equal_one_with_twice_the_batch(tmp_path):
    """DeCap (a registered method without PCM) through Method.fit on a tiny sandbox experiment: 2 processes at batch
    B train the same weights as 1 process at 2 B (same losses, same val CIDEr, same best checkpoint)."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    exp_dir = tmp_path / "exp"

    def run(out: Path, batch: int, processes: int) -> dict:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        job = subprocess.Popen([sys.executable] + (launcher if processes > 1 else [])
                               + [str(HERE / "method_job.py"), str(exp_dir), str(out), str(batch), "2"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(job)
        return {r: json.loads((out / f"rank{r}.json").read_text()) for r in range(processes)}

    one = run(tmp_path / "one", 8, 1)                 # prepares the experiment, then trains: 24 pairs, 3 steps an epoch
    two = run(tmp_path / "two", 4, 2)
    assert [two[r]["world"] for r in range(2)] == [2, 2] and two[0]["history"] == two[1]["history"]
    np.testing.assert_allclose(two[0]["history"]["loss"], one[0]["history"]["loss"], atol=1e-5)
    assert len(one[0]["history"]["loss"]) == 6
    np.testing.assert_allclose(two[0]["history"]["val_cider"], one[0]["history"]["val_cider"], atol=1e-6)
    single = _weights(tmp_path / "one/weights0.pt")
    for r in range(2):
        _assert_close(_weights(tmp_path / f"two/weights{r}.pt"), single)


def test_scst_two_processes_shard_the_images_and_hold_the_same_weights(tmp_path):
    """CMSA's RL stage under torch.distributed.run: each process its chunk of every global batch of images, the
    captioner's and the discriminator's gradients averaged (every process ends with the same weights, which
    moved), the main process alone writes; one process with twice the batch takes the same steps."""
    two, one = tmp_path / "two", tmp_path / "one"
    for job in [_launch(two, 6, 2, script="rl_job.py"), _launch(one, 12, 1, script="rl_job.py")]:
        _wait(job)
    logs = [json.loads((two / f"rank{r}.json").read_text()) for r in range(2)]
    single = json.loads((one / "rank0.json").read_text())
    assert [log["world"] for log in logs] == [2, 2]
    per_epoch = N // 12
    assert len(logs[0]["seen"]) == len(single["seen"]) == per_epoch * EPOCHS
    for step, batch in enumerate(single["seen"]):
        halves = [log["seen"][step] for log in logs]
        assert not set(halves[0]) & set(halves[1]) and halves[0] + halves[1] == batch
    assert logs[0]["history"] == logs[1]["history"]                     # one history (rewards averaged, val shared)
    np.testing.assert_allclose(logs[0]["sums"], logs[1]["sums"], rtol=0, atol=1e-6)    # the same weights every step
    assert len(set(np.round(logs[0]["sums"], 6))) > 1
    w = [_weights(two / f"weights{r}.pt") for r in range(2)]
    _assert_close(w[0], w[1])
    start = _weights(two / "start0.pt")
    _assert_close(start, _weights(two / "start1.pt"))
    assert max(float((w[0][k] - start[k]).abs().max()) for k in start) > 1e-3      # SCST moved the captioner
    assert logs[1]["writes"] == [] and {"last.pt", "best.pt", "history.json"} <= set(logs[0]["writes"])
    assert json.loads((two / "runs/rl/history.json").read_text())["num_processes"] == 2


def test_feature_extraction_splits_its_shards_across_two_processes(tmp_path, tiny_clip):
    from workbench.backbones.clip import save_clip_weights
    from workbench.features.cache import FeatureStore
    save_clip_weights(tiny_clip, tmp_path / "clip.safetensors", half=False)
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)   # 3 shards of 16
    np.save(tmp_path / "images.npy", images)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    args = [str(HERE / "features_job.py"), str(tmp_path / "clip.safetensors"), str(tmp_path / "images.npy")]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for cmd, root in (([sys.executable] + launcher + args, "two"), ([sys.executable] + args, "one")):
        job = subprocess.Popen(cmd + [str(tmp_path / root)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
        _wait(job)
    manifest = json.loads((tmp_path / "two" / "split" / "manifest.json").read_text())
    assert manifest["complete"] and [s["process"] for s in manifest["shards"]] == [0, 1, 0]    # disjoint shares
    assert not list((tmp_path / "two" / "split").glob("manifest.rank*.json"))                # merged, removed
    two, one = FeatureStore(tmp_path / "two" / "split"), FeatureStore(tmp_path / "one" / "split")
    for key in ("global", "tokens", "patches"):
        assert torch.equal(two.all(key), one.all(key)), key
