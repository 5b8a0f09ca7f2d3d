"""Self-critical reinforcement learning of a captioner on images without captions (CMSA's stage 2; CgT-GAN).

For a batch of images: n captions sampled from the model (multinomial), one greedy caption (the baseline);
reward r(c) = lam * r_CLIP(image, c) + (1 - lam) * r_D(c); loss = -mean((r(sample) - r(greedy)) * log p(sample))
(SCST, Rennie et al. 2017; log p is the mean over the caption's tokens, as CgT-GAN). The fluency reward r_D is
a discriminator's probability that a caption is human-written: a small Transformer encoder over word ids,
trained alongside with BCE on corpus captions (real) against the samples (fake).

    hist = train_scst(model, vocab, images, corpus, reward, val, RLConfig(...), "runs/rl", "cmsa-s0")

Resumable like ``train_captioner`` (checkpoint of model, discriminator and both optimisers, per-step seeding),
validation CIDEr after every epoch, the best epoch kept in ``best.pt`` and loaded at the end.

Data-parallel like ``train_captioner`` under ``accelerate launch`` / ``torchrun``: ``RLConfig.batch_size`` images a
process; every process draws the same seeded permutation of the epoch and takes its own chunk of each global
batch (``training.shard``), samples with its own seeded generator (``training.step_seed``), and the gradients
of the captioner and of the discriminator are averaged over the processes before each step, so every process
holds the same weights. The main process alone validates (its CIDEr broadcast) and writes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..utils.checkpoint import Checkpoint
from ..config import check_range
from ..model.decoding import greedy, sample
from ..utils.io import atomic_write_json, stable_hash
from ..utils.paths import repo_path
from ..training import shard, step_seed, validate_epoch


@dataclass(frozen=True)
class RLConfig:
    epochs: int = 6
    batch_size: int = 32               # images per step
    samples: int = 5                   # sampled captions per image (CgT-GAN: 5)
    lr: float = 5e-4
    disc_lr: float = 5e-4
    reward_weight: float = 0.5         # lam (CgT-GAN: w = 0.5); 1 = CLIP reward only, 0 = fluency only
    fluency_ramp: float = 0.25         # the fluency term ramps in linearly over this fraction of the steps
    grad_clip: float = 0.1
    seed: int = 0
    beam_size: int = 3                 # validation decoding
    disc_width: int = 128
    disc_layers: int = 2
    run_dir: str = "runs/rl"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "samples", "beam_size", "disc_width", "disc_layers"):
            check_range(name, getattr(self, name), 1)
        for name in ("lr", "disc_lr", "grad_clip"):
            check_range(name, getattr(self, name), 0.0)
        check_range("reward_weight", self.reward_weight, 0.0, 1.0)
        check_range("fluency_ramp", self.fluency_ramp, 0.0, 1.0)


class Discriminator(nn.Module):
    """words [B, L] (word ids, PAD = ``pad``) -> logit [B] that the caption is human-written."""

    def __init__(self, vocab_size: int, pad: int, width: int = 128, layers: int = 2, max_length: int = 32):
        super().__init__()
        self.pad = pad
        self.word = nn.Embedding(vocab_size, width, padding_idx=pad)
        self.pos = nn.Parameter(torch.randn(max_length, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 4 if width % 4 == 0 else 1, 2 * width, 0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, 1))

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        words = words[:, :self.pos.shape[0]]
        pad = words == self.pad
        pad[:, 0] = False                                            # an empty caption still has one slot
        x = self.encoder(self.word(words) + self.pos[:words.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((x * keep).sum(1) / keep.sum(1)).squeeze(-1)

    def loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """BCE: real captions -> 1, generated -> 0."""
        lr, lf = self(real), self(fake)
        return (F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) +
                F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))


def sequence_logprob(model, words: torch.Tensor, global_, tokens, patches, vocab) -> torch.Tensor:
    """Differentiable mean log-probability per caption: words [B, L] (no BOS; EOS then PAD) given the inputs of
    the same B rows -> [B] (mean over the tokens up to and including EOS)."""
    inp = torch.cat([torch.full_like(words[:, :1], vocab.bos), words[:, :-1]], dim=1)
    logp = torch.log_softmax(model(inp, global_, tokens, patches, mode="inference").float(), dim=-1)
    tok = logp.gather(-1, words.unsqueeze(-1)).squeeze(-1)                                  # [B, L]
    ended = torch.cumsum((words == vocab.eos).long(), dim=1)
    mask = ((ended == 0) | ((ended == 1) & (words == vocab.eos))).float()                    # up to the first EOS
    return (tok * mask).sum(1) / mask.sum(1).clamp(min=1)


def scst_loss(logp: torch.Tensor, reward: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """-mean((r - b) * log p): raises log p of samples that beat the baseline, lowers it for the others."""
    return -((reward - baseline).detach() * logp).mean()


def pad_cat(seqs: list, pad: int) -> torch.Tensor:
    """Word-id batches [B_i, L_i] (decoding stops when its batch has ended, so widths differ) padded on the
    right to the widest and stacked: [sum B_i, max L_i]."""
    width = max(s.shape[1] for s in seqs)
    return torch.cat([torch.nn.functional.pad(s, (0, width - s.shape[1]), value=pad) for s in seqs], dim=0)


def average_gradients(params, world: int) -> None:
    """Average the gradients of ``params`` over the ``world`` processes (a missing gradient counts as zero);
    nothing with one process."""
    if world == 1:
        return
    import torch.distributed as dist
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world


def scst_step(model, disc, opt, dopt, vocab, cfg: RLConfig, batch: tuple, corpus: torch.Tensor, reward: Callable,
              gen: torch.Generator, ramp: float, world: int) -> dict:
    """One SCST step on ``batch`` = (global_, tokens, patches, image_global): ``cfg.samples`` sampled captions per
    image against the greedy baseline, reward lam * r_CLIP + (1 - lam) * ramp * r_fluency, the policy gradient,
    then the discriminator on real corpus captions vs the samples. Returns the step's scalars (this process's)."""
    g, t, p, image = batch
    lam = cfg.reward_weight
    model.eval()
    with torch.no_grad():
        memory, pad = model.encode(g, t, p, mode="inference")
        samples = sample(model, memory, pad, vocab, model.cfg.max_length, cfg.samples, gen)
        base = greedy(model, memory, pad, vocab, model.cfg.max_length)
    words = pad_cat([samples, base], vocab.pad)                                 # [B * (S + 1), L]
    texts = [vocab.decode(w) for w in words]
    pictured = torch.cat([image.repeat_interleave(cfg.samples, 0), image])      # one per caption
    r_clip = reward(pictured, texts).float() if lam > 0 else torch.zeros(len(texts))
    disc.eval()
    with torch.no_grad():
        r_flu = torch.sigmoid(disc(words)) if lam < 1 else torch.zeros(len(texts))
    r = lam * r_clip + (1 - lam) * ramp * r_flu
    n = samples.shape[0]
    model.train()
    rep = lambda x: x.repeat_interleave(cfg.samples, 0) if x is not None else None  # noqa: E731
    logp = sequence_logprob(model, samples, rep(g), rep(t), rep(p), vocab)
    loss = scst_loss(logp, r[:n], r[n:].repeat_interleave(cfg.samples, 0))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(list(model.parameters()), world)
    torch.nn.utils.clip_grad_value_(model.parameters(), cfg.grad_clip)
    opt.step()
    dloss = torch.zeros(())
    if lam < 1:                                                  # the discriminator learns real vs generated
        disc.train()
        real = corpus[torch.randint(0, len(corpus), (n,), generator=gen)]
        dloss = disc.loss(real, samples)
        dopt.zero_grad(set_to_none=True)
        dloss.backward()
        average_gradients(list(disc.parameters()), world)
        dopt.step()
    return {"loss": loss, "reward": r[:n].mean(), "reward_clip": r_clip[:n].mean(), "reward_fluency": r_flu[:n].mean(),
            "disc_loss": dloss}


def train_scst(model, vocab, inputs: Callable, n_images: int, corpus: torch.Tensor, reward: Callable, val,
               cfg: RLConfig, name: str, identity: str = "", progress: bool = True) -> dict:
    """SCST on ``n_images`` unpaired images. ``inputs(idx) -> (global_, tokens, patches, image_global)`` gives the
    model's inputs and the raw image feature (the CLIP reward's) of images ``idx``; ``corpus`` [M, L] word ids of
    real captions (the discriminator's "real"; BOS dropped); ``reward(image_global [B, D], captions list[str]) ->
    r_CLIP [B]`` (None when lam = 0). Returns the history (loss, rewards, val_cider per epoch)."""
    from accelerate import PartialState
    from accelerate.utils import reduce
    from tqdm.auto import tqdm
    state = PartialState(cpu=not torch.cuda.is_available())
    rank, world, main = state.process_index, state.num_processes, state.is_main_process
    out = repo_path(cfg.run_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)                                  # the same discriminator on every process
    disc = Discriminator(len(vocab), vocab.pad, cfg.disc_width, cfg.disc_layers, model.cfg.max_length + 2)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    dopt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr)
    parts = {"cfg": asdict(cfg), "model": {k: list(v.shape) for k, v in model.state_dict().items()},
             "start": float(sum(p.detach().double().sum() for p in model.parameters())), "data": identity}
    if world != 1:                                # the global batch is batch_size x processes: another run
        parts["processes"] = world
    key = stable_hash(parts)
    last = Checkpoint(out / "last.pt", key)
    hist = {"loss": [], "reward": [], "reward_clip": [], "reward_fluency": [], "disc_loss": [], "val_cider": [],
            "epoch_step": []}
    step, epoch0, best = 0, 0, {"cider": -1.0, "epoch": -1}
    ck = last.load()
    if ck is not None:
        model.load_state_dict(ck["model"])
        disc.load_state_dict(ck["disc"])
        opt.load_state_dict(ck["opt"])
        dopt.load_state_dict(ck["dopt"])
        step, epoch0, hist, best = ck["step"], ck["epoch"], ck["history"], ck["best"]
    state.wait_for_everyone()                               # every process has read last.pt before any rewrites it
    per_epoch = max(1, n_images // cfg.batch_size) if world == 1 else n_images // (cfg.batch_size * world)
    if per_epoch < 1:
        raise ValueError(f"batch_size={cfg.batch_size} x {world} processes exceeds the {n_images} unpaired images; "
                         "lower rl_batch or the number of processes.")
    total = per_epoch * cfg.epochs
    bar = tqdm(total=total, initial=step, desc=f"SCST {name}", disable=not (progress and main))
    for epoch in range(epoch0, cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n_images)
        for b in range(step - epoch * per_epoch, per_epoch):
            torch.manual_seed(step_seed(cfg.seed, step, rank))
            gen = torch.Generator().manual_seed(step_seed(cfg.seed, step, rank))
            idx = shard(order, b, cfg.batch_size, rank, world)
            ramp = min(1.0, (step + 1) / max(1.0, cfg.fluency_ramp * total)) if cfg.fluency_ramp > 0 else 1.0
            logged = scst_step(model, disc, opt, dopt, vocab, cfg, inputs(idx), corpus, reward, gen, ramp, world)
            step += 1
            for k, v in logged.items():
                v = v.detach().float().reshape(())
                hist[k].append(float(reduce(v, "mean")) if world > 1 else float(v))     # the processes' mean
            bar.update(1)
            bar.set_postfix(reward=f"{np.mean(hist['reward'][-20:]):.3f}", epoch=epoch)
        best = validate_epoch(model, val, vocab, cfg.beam_size, out, hist, best, epoch, step, main, world)
        if main:
            last.save(model=model.state_dict(), disc=disc.state_dict(), opt=opt.state_dict(),
                      dopt=dopt.state_dict(), step=step, epoch=epoch + 1, history=hist, best=best)
    bar.close()
    state.wait_for_everyone()                                                   # best.pt is complete
    model.load_state_dict(torch.load(out / "best.pt", map_location="cpu"))
    if main:
        atomic_write_json(out / "history.json", {"history": hist, "best": best, "config": asdict(cfg), "key": key,
                                                 "num_processes": world})
    return hist
