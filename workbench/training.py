"""Training the captioner on cached features: Adam + Noam warm-up, gradient clipping, CXE, accelerate,
atomic checkpoints with resume after a kill, and checkpoint selection by val CIDEr (never test).

Determinism: the batch order of epoch e is a permutation seeded by (seed, e), and the dropout / noise
randomness of step t is seeded by (seed, t), so a run resumed from a checkpoint at step t produces the
same subsequent losses as an uninterrupted one.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .checkpoint import Checkpoint
from .config import TrainConfig
from .decoding import generate
from .evaluation import cider
from .losses import caption_loss, cxe_weights
from .paths import atomic_write, atomic_write_json, repo_path, stable_hash


@dataclass
class CaptionSet:
    """Training pairs on cached features: row ``rows[i]`` of ``store`` goes with ``captions[i]``.

    ``cos`` [N] is cos(g_I, g_S) of each pair (the CXE weight source); for the text-only model ``store``
    holds caption embeddings under ``global_key="text"`` and no patches."""
    store: object
    rows: list
    captions: list
    cos: Optional[torch.Tensor] = None
    global_key: str = "global"

    def identity(self) -> str:
        """What the pairs are: the feature cache's identity (backbone, image or text set), rows, captions, cos."""
        store_id = getattr(self.store, "manifest", {}).get("identity")
        return stable_hash({"store": store_id, "rows": list(self.rows), "captions": list(self.captions),
                            "cos": self.cos.tolist() if self.cos is not None else None, "key": self.global_key})

    def batch(self, idx: np.ndarray, vocab, use_patches: bool) -> dict:
        keys = [self.global_key] + (["tokens", "patches"] if use_patches else [])
        f = self.store.get([self.rows[i] for i in idx], keys=keys)
        return {"global_": f[self.global_key], "tokens": f.get("tokens"), "patches": f.get("patches"),
                "words": vocab.encode_batch([self.captions[i] for i in idx]),
                "cos": self.cos[idx] if self.cos is not None else None}


@dataclass
class EvalSet:
    """Images to caption (cached features) and their references."""
    global_: torch.Tensor          # [B, D]
    tokens: torch.Tensor           # [B, N, W]
    patches: torch.Tensor          # [B, N, D]
    refs: list                     # [B] lists of reference captions
    ids: list

    @classmethod
    def from_store(cls, store, refs: list) -> "EvalSet":
        f = store.get(range(len(store)))
        return cls(f["global"], f["tokens"], f["patches"], refs, list(store.ids))

    def subset(self, n: int) -> "EvalSet":
        """The first ``n`` images (a quick look in a notebook)."""
        return EvalSet(self.global_[:n], self.tokens[:n], self.patches[:n], self.refs[:n], self.ids[:n])

    def captions(self, model, vocab, beam: int) -> list:
        """The model's caption of every image (PCM inference mode), in ``ids`` order."""
        return generate(model, vocab, self.global_, self.tokens, self.patches, beam=beam)

    def references(self) -> dict:
        return dict(zip(self.ids, self.refs))

    def score(self, model, vocab, beam: int) -> tuple:
        """(val CIDEr, captions)."""
        hyps = self.captions(model, vocab, beam)
        return cider(self.references(), dict(zip(self.ids, hyps))), hyps


def noam_factor(step: int, warmup: int) -> float:
    """Noam schedule normalised to peak 1 at ``warmup``: min(step / warmup, sqrt(warmup / step))."""
    step = max(step, 1)
    return min(step / warmup, (warmup / step) ** 0.5)


def run_key(model, cfg: TrainConfig, train: CaptionSet) -> str:
    """Identity of a training run: its config (less the folder), the model's config and parameter shapes
    (an architecture change gives a new key), and the identity of the training pairs."""
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    return stable_hash({"train": {k: v for k, v in asdict(cfg).items() if k != "run_dir"},
                        "model": asdict(model.cfg), "shapes": shapes, "pairs": train.identity()})


def train_captioner(model, vocab, train: CaptionSet, val: EvalSet, cfg: TrainConfig, name: str,
                    progress: bool = True, stop_after: Optional[int] = None, callback=None) -> dict:
    """Train ``model`` (resuming from ``<run_dir>/<name>/last.pt`` if present), validate CIDEr on ``val``
    after every epoch and keep the best epoch in ``best.pt``. Returns the history; the model ends with
    the best weights loaded. ``stop_after`` ends the call after that many steps (notebook demos);
    ``callback(history, step)`` is called after every step and every validation (live plots)."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm
    out = repo_path(cfg.run_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    step, epoch0, history, best = 0, 0, {"loss": [], "val_cider": [], "epoch_step": []}, {"cider": -1.0, "epoch": -1}
    key = run_key(model, cfg, train)
    last = Checkpoint(out / "last.pt", key)
    ck = last.load()                                        # resume the same run; another run's file is replaced
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, epoch0, history, best = ck["step"], ck["epoch"], ck["history"], ck["best"]
    model, opt = acc.prepare(model, opt)
    n = len(train.captions)
    per_epoch = n // cfg.batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size={cfg.batch_size} exceeds the {n} training pairs; lower it.")
    bar = tqdm(total=per_epoch * cfg.epochs, initial=step, desc=f"train {name}", disable=not progress)
    steps_done = 0
    for epoch in range(epoch0, cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        for b in range(step - epoch * per_epoch, per_epoch):
            model.train()
            torch.manual_seed(cfg.seed * 1_000_003 + step)
            batch = train.batch(order[b * cfg.batch_size:(b + 1) * cfg.batch_size], vocab,
                                acc.unwrap_model(model).cfg.use_patches)
            dev = acc.device
            words = batch["words"].to(dev)
            args = [x.to(dev) if x is not None else None for x in (batch["global_"], batch["tokens"], batch["patches"])]
            for group in opt.param_groups:
                group["lr"] = cfg.lr * noam_factor(step + 1, cfg.warmup_steps)
            with acc.autocast():
                logits = model(words[:, :-1], *args, mode="train")
                weights = cxe_weights(batch["cos"], cfg.cxe_w).to(dev) if cfg.cxe and batch["cos"] is not None else None
                loss = caption_loss(logits, words[:, 1:], vocab.pad, weights, cfg.label_smoothing, cfg.focal_gamma)
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            acc.clip_grad_value_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            steps_done += 1
            history["loss"].append(float(loss.item()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(history['loss'][-50:]):.3f}", epoch=epoch)
            if callback is not None:
                callback(history, step)
            if step % cfg.checkpoint_every == 0:
                _save(acc, last, out, model, opt, step, epoch, history, best)
            if stop_after is not None and steps_done >= stop_after:
                _save(acc, last, out, model, opt, step, epoch, history, best)
                return history
        score, _ = val.score(acc.unwrap_model(model), vocab, cfg.beam_size)
        history["val_cider"].append(score)
        history["epoch_step"].append(step)
        if callback is not None:
            callback(history, step)
        if score > best["cider"]:
            best = {"cider": score, "epoch": epoch, "step": step}
            weights = {k: v.cpu() for k, v in acc.unwrap_model(model).state_dict().items()}
            atomic_write(out / "best.pt", lambda tmp: torch.save(weights, tmp))
        _save(acc, last, out, model, opt, step, epoch + 1, history, best)
    bar.close()
    model = acc.unwrap_model(model)
    model.load_state_dict(torch.load(out / "best.pt", map_location="cpu"))
    atomic_write_json(out / "history.json", {"history": history, "best": best, "config": asdict(cfg),
                                                "key": key})
    return history


def _save(acc, last: Checkpoint, out: Path, model, opt, step, epoch, history, best) -> None:
    last.save(model=acc.unwrap_model(model).state_dict(), opt=opt.state_dict(), step=step, epoch=epoch,
              history=history, best=best)
    atomic_write_json(out / "progress.json", {"step": step, "epoch": epoch, "best": best})


def reset_run(run_dir: str | Path, name: str) -> Path:
    """Delete ``<run_dir>/<name>`` (checkpoints and history) so the next ``train_captioner`` starts fresh;
    a relative ``run_dir`` is under the repository, as in ``train_captioner``."""
    import shutil
    out = repo_path(run_dir) / name
    shutil.rmtree(out, ignore_errors=True)
    return out


def load_history(run_dir: str | Path, name: str) -> dict:
    return json.loads((repo_path(run_dir) / name / "history.json").read_text())
