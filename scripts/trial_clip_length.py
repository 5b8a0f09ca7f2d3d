"""Trial: the sandbox CLIP trained longer (2,800 steps instead of 1,400), measured every 700 steps on the
caption-world statistics that world v6 misses (CLIPRe share <= 0.30, text->image recall within 10 pts of ViT-B/32).

    .venv/bin/python scripts/trial_clip_length.py 2800 700 [out_dir]     # ~40 min on 2 cores, resumable

Writes ``<out_dir>/trace.jsonl`` (one row per segment; docs/world_trials.md quotes it) and leaves the committed
weights alone (its run folder and weights go under out_dir)."""
import json, sys, time
from dataclasses import replace
from pathlib import Path
import torch, torch.nn.functional as F
from workbench.config import resolve
from workbench.backbones.sandbox_clip import pretrain
from workbench.evaluation import caption_stats as cs
from workbench.sandbox.splits import load_sandbox_split
from workbench.backbones.gap import gap_summary
from workbench.backbones.zeroshot import attribute_accuracy

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 2800
seg = int(sys.argv[2]) if len(sys.argv) > 2 else 700
out_dir = Path(sys.argv[3] if len(sys.argv) > 3 else f"runs/trial_clip_length/s{steps}")
out_dir.mkdir(parents=True, exist_ok=True)
cfg = replace(resolve("sandbox").pretrain, steps=steps, run_dir=str(out_dir / "run"),
              out_weights=str(out_dir / "clip.safetensors"))
world = cfg.world
test = load_sandbox_split(world, "test", n=5000, progress=False)
train = load_sandbox_split(world, "train", n=4000, progress=False)
val = load_sandbox_split(world, "val", n=1000, progress=False)
single = load_sandbox_split(world, "test", n=500, n_objects=1, progress=False)
memory = [c[0] for c in train.captions]
refs = {s.scene_id: c for s, c in zip(test.scenes[:1000], test.captions[:1000])}
base = cs.caption_world(refs, memory)
log = out_dir / "trace.jsonl"
done = {json.loads(l)["step"] for l in log.read_text().splitlines()} if log.exists() else set()
for target in range(seg, steps + 1, seg):
    t0 = time.time()
    clip = pretrain(cfg, progress=True, stop_after=seg) if target not in done else None
    if clip is None:
        continue
    # pretrain(stop_after) runs from the checkpoint; make sure we stop exactly at target
    clip.model.eval()
    with torch.no_grad():
        img = F.normalize(clip.image_features(test.images).global_.float(), dim=-1)
        txt = F.normalize(clip.text_features([c for cs_ in test.captions for c in cs_]).float(), dim=-1)
        mem = F.normalize(clip.text_features(memory).float(), dim=-1)
        vi = F.normalize(clip.image_features(val.images).global_.float(), dim=-1)
        vt = F.normalize(clip.text_features(val.first_captions()).float(), dim=-1)
    row = {"step": len(clip.losses), "train_s": round(time.time() - t0)}
    row.update(cs.clip_retrieval(img[:1000], mem, refs, memory, base["agreement_cider"]))
    rec = cs.recall_at_k(img, txt, per_image=5)
    row["i2t"], row["t2i"] = rec["i2t"], rec["t2i"]
    g = gap_summary(vi, vt)
    row.update({k: g[k] for k in ("paired_cos", "image_image_cos", "text_text_cos")})
    row.update({k: v for k, v in attribute_accuracy(clip, single.images, single.scenes).items() if k != "n"})
    row["agreement"] = base["agreement_cider"]
    with log.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
