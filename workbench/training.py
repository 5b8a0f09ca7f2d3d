"""Training the captioner on cached features: Adam + Noam warm-up, gradient clipping, CXE, accelerate,
atomic checkpoints with resume after a kill, and checkpoint selection by val CIDEr (never test).

Determinism: the batch order of epoch e is a permutation seeded by (seed, e), and the dropout / noise
randomness of step t on process r is seeded by (seed, t, r), so a run resumed from a checkpoint at step t
produces the same subsequent losses as an uninterrupted one.

Data-parallel: launched with ``accelerate launch`` or ``torchrun``, each process trains on its own chunk of
every global batch (``shard``; ``TrainConfig.batch_size`` is per process), DDP averages the gradients, and only
the main process validates and writes checkpoints. One process without a launcher is the plain loop.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .utils.checkpoint import Checkpoint
from .config import TrainConfig
from .model.decoding import generate
from .evaluation.metrics import cider
from .model.losses import caption_loss, cxe_weights
from .utils.io import atomic_write, atomic_write_json, stable_hash
from .utils.paths import repo_path


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
        """The first ``n`` images, same class and recipe (every per-image field is cut: features, refs, ids and a
        subclass's own, e.g. MacCap's attention)."""
        out, size = copy.copy(self), len(self.ids)
        for k, v in vars(self).items():
            if isinstance(v, (torch.Tensor, list)) and len(v) == size:
                setattr(out, k, v[:n])
        return out

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


def run_key(model, cfg: TrainConfig, train: CaptionSet, num_processes: int = 1) -> str:
    """Identity of a training run: its config (less the folder), the model's config and parameter shapes
    (an architecture change gives a new key), the identity of the training pairs and, when above 1, the
    number of processes (the global batch is ``batch_size * num_processes``: another count is another run)."""
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    parts = {"train": {k: v for k, v in asdict(cfg).items() if k != "run_dir"},
             "model": asdict(model.cfg), "shapes": shapes, "pairs": train.identity()}
    if num_processes != 1:
        parts["processes"] = num_processes
    return stable_hash(parts)


def shard(order: np.ndarray, b: int, batch_size: int, process_index: int = 0, num_processes: int = 1) -> np.ndarray:
    """The items process ``process_index`` trains on at step ``b`` of an epoch: global step ``b`` takes the
    ``batch_size * num_processes`` items ``order[b G:(b + 1) G]`` and process r its r-th contiguous chunk of
    ``batch_size`` (so one process with batch 2 B sees the union of two processes' batches of B)."""
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index={process_index} must be in [0, num_processes={num_processes}).")
    start = (b * num_processes + process_index) * batch_size
    return order[start:start + batch_size]


def step_seed(seed: int, step: int, process_index: int = 0) -> int:
    """The torch seed of the dropout / noise draws of ``step`` on process ``process_index``: process 0 keeps the
    single-process seed (seed, step); process r is offset by r * 2^40, so processes draw different noise."""
    return seed * 1_000_003 + step + (process_index << 40)


def train_step(acc, model, opt, batch: dict, vocab, cfg: TrainConfig, step: int) -> torch.Tensor:
    """One optimisation step on ``batch`` (``CaptionSet.batch``): Noam learning rate, (CXE-weighted) caption loss,
    backward (DDP averages the gradients), clipping by value, Adam. Returns this process's loss, weighted by its
    share of the global batch's caption tokens under several processes."""
    model.train()
    dev = acc.device
    words = batch["words"].to(dev)                                              # [B, L + 2] BOS ... EOS pad
    args = [x.to(dev) if x is not None else None for x in (batch["global_"], batch["tokens"], batch["patches"])]
    for group in opt.param_groups:
        group["lr"] = cfg.lr * noam_factor(step + 1, cfg.warmup_steps)
    with acc.autocast():
        prompt = {"prompt": batch["prompt"].to(dev)} if batch.get("prompt") is not None else {}
        logits = model(words[:, :-1], *args, mode="train", **prompt)            # [B, L + 1, V]
        weights = cxe_weights(batch["cos"], cfg.cxe_w).to(dev) if cfg.cxe and batch["cos"] is not None else None
        loss = caption_loss(logits, words[:, 1:], vocab.pad, weights, cfg.label_smoothing, cfg.focal_gamma)
    if acc.num_processes > 1:   # weight each process by its share of the global batch's tokens: DDP's average
        tokens = (words[:, 1:] != vocab.pad).sum().float()                     # is then the global token mean
        loss = loss * tokens * acc.num_processes / acc.reduce(tokens.clone(), "sum")
    opt.zero_grad(set_to_none=True)
    acc.backward(loss)                                                          # DDP: gradients averaged here
    acc.clip_grad_value_(model.parameters(), cfg.grad_clip)
    opt.step()
    return loss


def validate_epoch(model, val: EvalSet, vocab, beam: int, out: Path, history: dict, best: dict, epoch: int,
                   step: int, main: bool = True, num_processes: int = 1) -> dict:
    """Val CIDEr of ``model`` (unwrapped) after an epoch, on the main process and broadcast under several, so every
    process keeps one history; appended to ``history``; a new best writes ``<out>/best.pt`` (main process).
    Returns the best so far. The one validation step of the captioner's training and of SCST (``methods.rl``)."""
    from accelerate.utils import broadcast_object_list
    score = val.score(model, vocab, beam)[0] if main else None
    score = broadcast_object_list([score])[0] if num_processes > 1 else score
    history["val_cider"].append(score)
    history["epoch_step"].append(step)
    if score > best["cider"]:
        best = {"cider": score, "epoch": epoch, "step": step}
        if main:
            weights = {k: v.cpu() for k, v in model.state_dict().items()}
            atomic_write(out / "best.pt", lambda tmp: torch.save(weights, tmp))
    return best


def train_captioner(model, vocab, train: CaptionSet, val: EvalSet, cfg: TrainConfig, name: str,
                    progress: bool = True, stop_after: Optional[int] = None, callback=None) -> dict:
    """Train ``model`` (resuming from ``<run_dir>/<name>/last.pt`` if present), validate CIDEr on ``val``
    after every epoch and keep the best epoch in ``best.pt``. Returns the history; the model ends with
    the best weights loaded. ``stop_after`` ends the call after that many steps (notebook demos);
    ``callback(history, step)`` is called after every step and every validation (live plots), on the main
    process only.

    Data-parallel under ``accelerate launch`` / ``torchrun`` (one process alone is the plain loop):
    ``cfg.batch_size`` is the batch of each process; every process draws the same seeded permutation of the
    epoch and trains on its own chunk of each global batch (``shard``); the epoch's tail short of a whole global
    batch is dropped, so all processes take the same steps. DDP (``acc.prepare``) averages the gradients, then
    they are clipped by value. Each process's token-mean loss is weighted by its share of the global batch's
    caption tokens, so the averaged gradient and the loss in the history are the global batch's token mean (the
    same as one process on the combined batch). Only the main process validates and writes
    ``last.pt``, ``best.pt``, ``progress.json`` and ``history.json``; the val CIDEr is broadcast so every
    process returns the same history and ends with ``best.pt`` loaded."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from tqdm.auto import tqdm
    val = val.subset(cfg.val_size)                       # the first val_size images pick the checkpoint
    out = repo_path(cfg.run_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available(),
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    step, epoch0, history, best = 0, 0, {"loss": [], "val_cider": [], "epoch_step": []}, {"cider": -1.0, "epoch": -1}
    key = run_key(model, cfg, train, world)
    last = Checkpoint(out / "last.pt", key)
    ck = last.load()                                        # resume the same run; another run's file is replaced
    if ck is None:                                          # or a shorter budget's finished run, continued
        if main:
            continue_shorter_run(model, cfg, train, name, world, last)
        acc.wait_for_everyone()
        ck = last.load(quiet=True)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, epoch0, history, best = ck["step"], ck["epoch"], ck["history"], ck["best"]
    acc.wait_for_everyone()                                 # every process has read last.pt before any rewrites it
    model, opt = acc.prepare(model, opt)                    # DDP when world > 1 (starts from process 0's weights)
    n = len(train.captions)
    per_epoch = n // (cfg.batch_size * world)
    if per_epoch < 1:
        raise ValueError(f"batch_size={cfg.batch_size} x {world} processes exceeds the {n} training pairs; "
                         "lower batch_size or the number of processes.")
    bar = tqdm(total=per_epoch * cfg.epochs, initial=step, desc=f"train {name}", disable=not (progress and main))
    steps_done = 0
    for epoch in range(epoch0, cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n)            # [n], the same on every process
        for b in range(step - epoch * per_epoch, per_epoch):
            torch.manual_seed(step_seed(cfg.seed, step, rank))
            batch = train.batch(shard(order, b, cfg.batch_size, rank, world), vocab,
                                acc.unwrap_model(model).cfg.use_patches)
            loss = train_step(acc, model, opt, batch, vocab, cfg, step)
            step += 1
            steps_done += 1
            history["loss"].append(float(acc.reduce(loss.detach(), "mean").item()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(history['loss'][-50:]):.3f}", epoch=epoch)
            if callback is not None and main:
                callback(history, step)
            if step % cfg.checkpoint_every == 0:
                _save(acc, last, out, model, opt, step, epoch, history, best)
            if stop_after is not None and steps_done >= stop_after:
                _save(acc, last, out, model, opt, step, epoch, history, best)
                acc.wait_for_everyone()
                return history
        best = validate_epoch(acc.unwrap_model(model), val, vocab, cfg.beam_size, out, history, best, epoch, step,
                              main, world)
        if callback is not None and main:
            callback(history, step)
        _save(acc, last, out, model, opt, step, epoch + 1, history, best)
    bar.close()
    model = acc.unwrap_model(model)
    acc.wait_for_everyone()                                                         # best.pt is complete
    model.load_state_dict(torch.load(out / "best.pt", map_location="cpu"))
    if main:
        atomic_write_json(out / "history.json", {"history": history, "best": best, "config": asdict(cfg),
                                                    "key": key, "num_processes": world})
    return history


def continue_shorter_run(model, cfg: TrainConfig, train: CaptionSet, name: str, num_processes: int,
                         last: Checkpoint) -> Optional[dict]:
    """The state of the longest finished run of ``name`` beside ``cfg.run_dir`` (``<run_dir>/../*/<name>``) that is
    this run with a shorter budget (its key is ``run_key`` with its own ``epochs``), copied into this run's folder
    (``last.pt`` under this run's key, ``best.pt``) so a longer budget continues it; None when there is none.
    Exact: the Noam schedule, each epoch's order and each step's seed do not depend on the budget, so the first E
    epochs of any run are the run of budget E (a learning curve at 48 epochs continues the one at 32)."""
    import shutil
    from dataclasses import replace
    from glob import escape
    out = repo_path(cfg.run_dir) / name
    found = None
    for hist_file in sorted(out.parent.parent.glob(f"*/{escape(name)}/history.json")):
        folder = hist_file.parent
        if folder.resolve() == out.resolve() or not (folder / "last.pt").exists() or not (folder / "best.pt").exists():
            continue
        try:
            epochs = int(json.loads(hist_file.read_text())["config"]["epochs"])
        except (ValueError, KeyError, TypeError):
            continue
        if epochs >= cfg.epochs or (found and epochs <= found[1]):
            continue
        state = Checkpoint(folder / "last.pt", run_key(model, replace(cfg, epochs=epochs), train, num_processes))
        if (st := state.load(quiet=True)) is not None and st["epoch"] == epochs:
            found = (folder, epochs, st)
    if found is None:
        return None
    folder, epochs, st = found
    atomic_write(out / "best.pt", lambda tmp: shutil.copyfile(folder / "best.pt", tmp))
    last.save(**{k: v for k, v in st.items() if k != "key"})
    print(f"continuing {folder} ({epochs} epochs) to {cfg.epochs} epochs in {out}")
    return st


def _save(acc, last: Checkpoint, out: Path, model, opt, step, epoch, history, best) -> None:
    """Write last.pt and progress.json from the main process (the others hold the same state)."""
    if not acc.is_main_process:
        return
    last.save(model=acc.unwrap_model(model).state_dict(), opt=opt.state_dict(), step=step, epoch=epoch,
              history=history, best=best)
    atomic_write_json(out / "progress.json", {"step": step, "epoch": epoch, "best": best})


def plateau_epoch(val_cider: list, tail: float = 0.25, tol: float = 0.02) -> Optional[int]:
    """The shortest budget (epochs) of a long run's val curve whose last ``tail`` share of epochs adds under ``tol``
    relative to the best val CIDEr before it (what checkpoint selection would keep), and whose best is within
    ``tol`` of the whole run's (so an early dip of a noisy curve is not a plateau): the first E with
    max(val[:E]) <= (1 + tol) max(val[:E - ceil(tail E)]) and max(val[:E]) >= (1 - tol) max(val).
    None when the curve never flattens so."""
    import math
    v = np.maximum.accumulate(np.asarray(val_cider, float))
    for e in range(4, len(v) + 1):
        head = e - math.ceil(tail * e)
        if v[e - 1] <= (1 + tol) * v[head - 1] and v[e - 1] >= (1 - tol) * v[-1]:
            return e
    return None


def reset_run(run_dir: str | Path, name: str) -> Path:
    """Delete ``<run_dir>/<name>`` (checkpoints and history) so the next ``train_captioner`` starts fresh;
    a relative ``run_dir`` is under the repository, as in ``train_captioner``."""
    import shutil
    out = repo_path(run_dir) / name
    shutil.rmtree(out, ignore_errors=True)
    return out


def load_history(run_dir: str | Path, name: str) -> dict:
    return json.loads((repo_path(run_dir) / name / "history.json").read_text())
