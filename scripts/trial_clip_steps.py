"""Choose where the sandbox CLIP's training stops, on val: one cosine schedule of ``schedule`` steps, measured
every ``seg`` steps on the caption-world statistics the calibration bounds (CLIPRe share of agreement, zero-shot
recall on 5,000 scenes x 5 captions), on val scenes (choice) and on test scenes (the table).

    .venv/bin/python scripts/trial_clip_steps.py 2800 350 [out_dir]     # ~45 min on 2 cores, resumable
    .venv/bin/python scripts/trial_clip_steps.py 2800 350 --adopt       # the chosen checkpoint -> the preset's run

Writes ``<out_dir>/trace.jsonl`` (one row per segment and split) and keeps the checkpoint of every segment
(``<out_dir>/run/step-N.pt``); the committed weights are left alone. The sandbox preset then names the chosen
stop (``PretrainConfig(steps=N, schedule_steps=schedule)``); ``--adopt`` checks that the preset is this trial's
run stopped there and copies that checkpoint into the preset's run folder under the preset's run key, so
``workbench pretrain-clip`` resumes it at its last step and writes the weights; ``--fresh`` retrains it
(docs/world_trials.md)."""
import json, shutil, sys, time
from dataclasses import replace
from pathlib import Path
import torch, torch.nn.functional as F
from workbench.config import resolve
from workbench.backbones.sandbox_clip import pretrain
from workbench.evaluation import caption_stats as cs
from workbench.sandbox.splits import load_sandbox_split
from workbench.backbones.gap import gap_summary
from workbench.backbones.zeroshot import attribute_accuracy

args = [a for a in sys.argv[1:] if not a.startswith("--")]
steps = int(args[0]) if len(args) > 0 else 2800
seg = int(args[1]) if len(args) > 1 else 350
out_dir = Path(args[2] if len(args) > 2 else f"runs/trial_clip_steps/s{steps}")
out_dir.mkdir(parents=True, exist_ok=True)
cfg = replace(resolve("sandbox").pretrain, steps=steps, schedule_steps=None, run_dir=str(out_dir / "run"),
              out_weights=str(out_dir / "clip.safetensors"))
world = cfg.world
log = out_dir / "trace.jsonl"
adopt = "--adopt" in sys.argv        # choose from the trace and adopt; no training


def measure_segments() -> None:
    """Train segment by segment (resuming), measuring each on val and test into ``log``."""
    train = load_sandbox_split(world, "train", n=4000, progress=False)
    memory = [c[0] for c in train.captions]
    splits = {}
    for name in ("val", "test"):   # val: 5,000 scenes of the val stream (the configured val split is its first 1,000)
        sp = load_sandbox_split(world, name, n=5000, progress=False)
        refs = {s.scene_id: c for s, c in zip(sp.scenes[:1000], sp.captions[:1000])}
        splits[name] = (sp, refs, cs.caption_world(refs, memory)["agreement_cider"])
    single = load_sandbox_split(world, "val", n=300, n_objects=1, progress=False)
    done = {json.loads(l)["step"] for l in log.read_text().splitlines()} if log.exists() else set()
    for target in range(seg, steps + 1, seg):
        if target in done:
            continue
        t0 = time.time()
        clip = pretrain(cfg, progress=True, stop_after=seg)
        step = len(clip.losses)
        shutil.copyfile(out_dir / "run" / "checkpoint.pt", out_dir / "run" / f"step-{step}.pt")
        clip.model.eval()
        for name, (sp, refs, agreement) in splits.items():
            with torch.no_grad():
                img = F.normalize(clip.image_features(sp.images).global_.float(), dim=-1)
                txt = F.normalize(clip.text_features([c for cc in sp.captions for c in cc]).float(), dim=-1)
                mem = F.normalize(clip.text_features(memory).float(), dim=-1)
            row = {"step": step, "split": name, "train_s": round(time.time() - t0), "agreement": agreement}
            row.update(cs.clip_retrieval(img[:1000], mem, refs, memory, agreement))
            rec = cs.recall_at_k(img, txt, per_image=5)
            row["i2t"], row["t2i"] = rec["i2t"], rec["t2i"]
            row["within_bounds"] = cs.within_bounds({**row, "recall_i2t": rec["i2t"], "recall_t2i": rec["t2i"],
                                                     "agreement_cider": agreement})
            g = gap_summary(img[:1000], txt[::5][:1000])
            row.update({k: g[k] for k in ("paired_cos", "image_image_cos", "text_text_cos")})
            if name == "val":
                row.update({k: v for k, v in attribute_accuracy(clip, single.images, single.scenes).items() if k != "n"})
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
        done.add(step)


if not adopt:
    measure_segments()

# The stop, chosen on val (rule fixed before the trial ran): the earliest segment whose val statistics meet every
# bound (CLIPRe share <= 0.30, recall within +-10 pts of ViT-B/32, paired cosine 0.20-0.45, zero-shot colour >= 0.70
# and category >= 0.40: the floors tests/test_sandbox_clip.py guards); if none does, the fewest failed, then earliest.
def failed(row: dict) -> list:
    out = [k for k, ok in row["within_bounds"].items() if not ok and k != "agreement_cider"]
    if not 0.20 <= row["paired_cos"] <= 0.45:
        out.append("paired_cos")
    if row.get("colour_acc", 1.0) < 0.70:
        out.append("colour_acc")
    if row.get("shape_acc", 1.0) < 0.40:
        out.append("shape_acc")
    return out


rows = [json.loads(l) for l in log.read_text().splitlines()]
val = sorted((r for r in rows if r["split"] == "val"), key=lambda r: r["step"])
for r in val:
    print(r["step"], "fails:", failed(r) or "none")
best = min(val, key=lambda r: (len(failed(r)), r["step"]))
print(json.dumps({"chosen_step": best["step"], "schedule": steps, "fails": failed(best)}))

if adopt:
    from workbench.backbones.sandbox_clip import run_key
    from workbench.utils.checkpoint import Checkpoint
    from workbench.utils.paths import repo_path
    preset = resolve("sandbox").pretrain
    same = replace(cfg, steps=preset.steps, schedule_steps=preset.schedule_steps, run_dir=preset.run_dir,
                   out_weights=preset.out_weights, monitor_every=preset.monitor_every)
    if same != preset or preset.steps != best["step"] or preset.schedule_length != steps:
        raise SystemExit(f"the sandbox preset (steps={preset.steps}, schedule {preset.schedule_length}) is not this "
                         f"trial's run stopped at its chosen step {best['step']} of {steps}; set it first.")
    state = torch.load(out_dir / "run" / f"step-{best['step']}.pt", map_location="cpu", weights_only=False)
    assert state["step"] == best["step"], state["step"]
    full = load_sandbox_split(world, "train", progress=False)
    state.pop("key", None)
    Checkpoint(repo_path(preset.run_dir) / "checkpoint.pt", run_key(preset, full.captions, full)).save(**state)
    print(f"adopted step {best['step']} into {preset.run_dir}/checkpoint.pt: now `workbench pretrain-clip --preset sandbox`")
