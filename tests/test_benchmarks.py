"""The GPU throughput script (issue 24 item 7) runs end to end in its CPU smoke mode and writes what it promises;
its figures are never asserted (benchmarks are read by hand, on the machine that ran them)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_throughput_script_smoke(tmp_path):
    out = tmp_path / "gpu.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu_methods.py"), "--smoke",
                          "--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    rep = json.loads(out.read_text())
    assert rep["device"] and [r["method"] for r in rep["methods"]] == ["capdec", "decap"]
    assert all(r[k] > 0 for r in rep["methods"] for k in ("train_captions_per_s", "encode_images_per_s",
                                                          "decode_images_per_s", "infer_images_per_s"))
    assert rep["synthesis"]["bare_images_per_s"] > 0 and rep["synthesis"]["engine_over_bare"] > 0
    assert "| ViT-B-32 | capdec |" in res.stdout and "engine" in res.stdout
