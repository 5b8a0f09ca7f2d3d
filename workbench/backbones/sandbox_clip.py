"""Contrastive pretraining of the sandbox CLIP on sandbox renders and their captions.

Reproduce the committed weights from scratch (fixed seed, ~15 min on 2 CPU cores):

    workbench pretrain-clip --preset sandbox

Resumable: a checkpoint is written atomically every ``checkpoint_every`` steps under ``run_dir``;
rerunning continues from it (``--fresh`` starts over). The batch of step ``t`` depends only on
``(seed, t)``, so a resumed run follows the same trajectory as an uninterrupted one. At the end the
weights go to ``out_weights`` (fp16 safetensors) with a JSON manifest beside them holding the config,
the loss curve summary, timings, the checksum and the zero-shot acceptance numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from .clip import ClipBackbone, load_clip, save_clip_weights
from ..utils.checkpoint import Checkpoint
from ..config import ClipConfig, PretrainConfig, resolve
from ..sandbox.splits import load_sandbox_split
from .gap import REAL_CLIP
from ..utils.io import atomic_write_json, sha256_file, stable_hash
from ..utils.paths import repo_path
from ..sandbox.captions import alt_texts, swap_shape


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list:
    """No weight decay on gains, biases, embeddings of tokens/positions and the logit scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        skip = p.ndim < 2 or "embedding" in name or "logit_scale" in name or "ln" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_lambda(cfg: PretrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        t = (step - cfg.warmup_steps) / max(1, cfg.schedule_length - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def batch_indices(cfg: PretrainConfig, step: int, n_scenes: int, n_captions: int):
    """The (scene, caption) indices of step ``step``: a pure function of ``(seed, step)``."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    scenes = torch.randperm(n_scenes, generator=g)[:cfg.batch_size]
    caps = torch.randint(0, n_captions, (len(scenes),), generator=g)
    return scenes, caps


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor,
                     neg: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE on normalised [B, D] features; ``neg`` [B, D] adds hard-negative texts to the
    image-to-text softmax (NegCLIP)."""
    labels = torch.arange(len(img), device=img.device)
    texts = txt if neg is None else torch.cat([txt, neg])
    return 0.5 * (F.cross_entropy(scale * img @ texts.T, labels) + F.cross_entropy(scale * txt @ img.T, labels))


def monitor(clip: ClipBackbone, world, n_pairs: int = 500, n_single: int = 300) -> dict:
    """Gap statistics on ``n_pairs`` val pairs and zero-shot colour/shape accuracy on val single objects."""
    from .gap import encode_pairs, gap_summary
    from .zeroshot import attribute_accuracy
    was_training = clip.model.training
    clip.model.eval()
    pairs = load_sandbox_split(world, "val", n=n_pairs, progress=False)
    f = encode_pairs(clip, pairs.images, pairs.first_captions(), progress=False)
    out = gap_summary(f["img"], f["txt"])
    if n_single:
        single = load_sandbox_split(world, "val", n=n_single, n_objects=1, progress=False)
        out.update({k: v for k, v in attribute_accuracy(clip, single.images, single.scenes).items() if k != "n"})
    clip.model.train(was_training)
    return out


def run_key(cfg: PretrainConfig, texts, data) -> str:
    """The identity of a pretraining run: its config and its data (captions, a digest of the renders). Where the run
    stops (``steps``), where it is written and how it is monitored are left out: the trajectory is the schedule's."""
    run_cfg = {**asdict(cfg), "steps": None, "schedule_steps": cfg.schedule_length, "monitor_every": None}
    return stable_hash({"cfg": run_cfg, "data": {"texts": stable_hash(texts), "pixels": data.pixels_digest()}})


def pretrain(cfg: PretrainConfig, fresh: bool = False, progress: bool = True, device: str = "cpu",
             stop_after: int | None = None) -> ClipBackbone:
    """Train the CLIP that ``cfg.model_name`` names from random weights; returns the trained backbone.

    ``stop_after`` ends this process's work after that many steps (as an interruption would); a later
    call resumes from the last checkpoint.
    """
    from tqdm.auto import tqdm
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    clip = load_clip(ClipConfig(model_name=cfg.model_name, pretrained=None), device=device)
    model = clip.model.train()
    data = load_sandbox_split(cfg.world, "train", progress=progress)
    pixels_all = torch.from_numpy(data.images)                                   # uint8 [N, H, W, 3]
    texts = alt_texts(data.scenes, seed=cfg.seed) if cfg.text == "alt" else data.captions  # [N][5] strings
    tokens_all = torch.stack([clip.tokenize(c).cpu() for c in texts])           # [N, 5, L]
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))

    # the run is its config *and its data*: another world (renders or captions) is another run, never resumed.
    # Where training stops is not part of it: the trajectory is the schedule's, so a stop chosen on val resumes
    # the run that chose it (its checkpoint at that step, ``scripts/trial_clip_steps.py``).
    ckpt = Checkpoint(repo_path(cfg.run_dir) / "checkpoint.pt", run_key(cfg, texts, data))
    if cfg.logit_scale is not None:                  # fixed temperature: not a parameter any more
        model.logit_scale.requires_grad_(False)
        with torch.no_grad():
            model.logit_scale.fill_(math.log(cfg.logit_scale))
    start, losses, trace = 0, [], []
    state = ckpt.load(fresh)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start, losses, trace = state["step"], state["losses"], state.get("trace", [])
        print(f"resumed from {ckpt.path} at step {start}")
        if start > cfg.steps:
            raise ValueError(f"the checkpoint in {ckpt.path} is at step {start}, past steps={cfg.steps}; pass "
                             f"fresh=True (--fresh) to retrain, or a run_dir whose checkpoint stops at {cfg.steps}.")

    t0 = time.time()
    bar = tqdm(range(start, cfg.steps), desc="pretrain CLIP", initial=start, total=cfg.steps, disable=not progress)
    for step in bar:
        if stop_after is not None and step - start >= stop_after:
            break
        si, ci = batch_indices(cfg, step, len(data), tokens_all.shape[1])
        pixels = clip.pixels_from_uint8(pixels_all[si])
        tokens = tokens_all[si, ci].to(clip.device)
        img, txt, scale = model(pixels, tokens)
        neg = None
        if cfg.shape_negatives:
            rng = np.random.default_rng([cfg.seed, step])
            swapped = [swap_shape(texts[s][c], rng) for s, c in zip(si.tolist(), ci.tolist())]
            neg = model.encode_text(clip.tokenize(swapped), normalize=True)
        loss = contrastive_loss(img, txt, scale, neg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if cfg.logit_scale is None:                                  # a learned scale is capped at 100
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", scale=f"{scale.item():.1f}")
        if cfg.monitor_every and ((step + 1) % cfg.monitor_every == 0 or step + 1 == cfg.steps):
            with torch.no_grad():
                trace.append({"step": step + 1, **monitor(clip, cfg.world)})
            bar.write(json.dumps({k: round(v, 3) for k, v in trace[-1].items()}))
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            ckpt.save(model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(), step=step + 1,
                      losses=losses, trace=trace)
    clip.train_seconds = time.time() - t0
    clip.losses, clip.trace = losses, trace
    model.eval()
    return clip


def write_weights(clip: ClipBackbone, cfg: PretrainConfig, report: dict | None = None,
                  preset: str = "sandbox", gap: dict | None = None) -> Path:
    """Save fp16 safetensors to ``cfg.out_weights`` plus a JSON manifest with the same stem (config, losses,
    zero-shot ``report``, ``gap`` statistics beside real CLIP's, the gap's trajectory during training)."""
    out = save_clip_weights(clip, repo_path(cfg.out_weights))
    losses = getattr(clip, "losses", [])
    manifest = {
        "model_name": cfg.model_name,
        "model_config": open_clip.get_model_config(cfg.model_name),
        "pretrain_config": asdict(cfg),
        "sha256": sha256_file(out),
        "bytes": out.stat().st_size,
        "first_loss": losses[0] if losses else None,
        "final_loss_mean_last_20": float(np.mean(losses[-20:])) if losses else None,
        "train_seconds_this_process": round(getattr(clip, "train_seconds", 0.0), 1),
        "torch": torch.__version__, "open_clip": open_clip.__version__, "machine": platform.machine(),
        "zero_shot": report,
        "gap_val": gap, "gap_real_clip_reference": REAL_CLIP if gap else None,
        "gap_trace": getattr(clip, "trace", []),
        "reproduce": f"workbench pretrain-clip --preset {preset} --fresh",
    }
    atomic_write_json(out.with_suffix(".json"), manifest)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Pretrain the sandbox CLIP contrastively.")
    ap.add_argument("--preset", default="sandbox", choices=["tiny", "sandbox"])
    ap.add_argument("--steps", type=int, default=None, help="override the preset's step count")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--out", default=None, help="override the weights path")
    ap.add_argument("--logit-scale", type=float, default=None, help="override the fixed logit scale")
    ap.add_argument("--run-dir", default=None, help="override the checkpoint folder")
    args = ap.parse_args(argv)
    cfg = resolve(args.preset).pretrain
    overrides = {k: v for k, v in (("steps", args.steps), ("threads", args.threads), ("out_weights", args.out),
                                   ("logit_scale", args.logit_scale), ("run_dir", args.run_dir)) if v}
    cfg = replace(cfg, **overrides)
    t0 = time.time()
    clip = pretrain(cfg, fresh=args.fresh)
    from .zeroshot import sandbox_report
    report, gap = None, None
    if args.preset == "sandbox":
        report = sandbox_report(clip, cfg.world, progress=True)
        with torch.no_grad():
            gap = {k: v for k, v in monitor(clip, cfg.world, n_pairs=1000, n_single=0).items() if "_acc" not in k}
    out = write_weights(clip, cfg, report, preset=args.preset, gap=gap)
    print(json.dumps({"zero_shot": report, "gap_val": gap}, indent=2))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.0f} s total")


if __name__ == "__main__":
    main()
