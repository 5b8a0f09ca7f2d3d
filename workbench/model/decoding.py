"""Decoding: greedy, multinomial sampling (self-critical RL) and batched beam search (beam 3 by default, at most ``max_length`` words), and a
captioning function for PIL images, paths or uint8 arrays (real images go through PCM's inference mode).

Both decode incrementally through the captioner's key/value caches (``model.start`` / ``step`` /
``reorder``): each step feeds only the newest word, and beam search reorders the caches with the beams.
"""
from __future__ import annotations

import torch


def _end_at_limit(logits: torch.Tensor, eos: int) -> torch.Tensor:
    """The step after ``max_length`` words: only EOS is allowed (logits [B, V] -> [B, V])."""
    out = torch.full_like(logits, float("-inf"))
    out[:, eos] = 0.0
    return out


def no_specials(logits: torch.Tensor, vocab) -> torch.Tensor:
    """logits [B, V] with <unk>, <bos> and <pad> ruled out as words: a caption never says "<unk>". A special that
    is also the end token (a language model's pad = bos = eos) stays allowed: it ends the caption."""
    banned = {getattr(vocab, name, None) for name in ("unk", "bos", "pad")} - {None, vocab.eos}
    out = logits.clone()
    if banned:
        out[:, sorted(banned)] = float("-inf")
    return out


def _decode(model, memory: torch.Tensor, memory_pad: torch.Tensor, vocab, max_length: int, choose) -> torch.Tensor:
    """One word per step until every sequence has ended: ``choose(logits [B, V]) -> ids [B]``; at most
    ``max_length`` words, then EOS."""
    b = memory.shape[0]
    seq = torch.full((b, 1), vocab.bos, dtype=torch.long, device=memory.device)
    done = torch.zeros(b, dtype=torch.bool, device=memory.device)
    state = model.start(memory, memory_pad)
    for t in range(max_length + 1):
        logits = model.step(seq[:, -1], state)
        nxt = choose(_end_at_limit(logits, vocab.eos) if t == max_length else logits)
        nxt = torch.where(done, torch.full_like(nxt, vocab.pad), nxt)
        seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
        done |= nxt == vocab.eos
        if done.all():
            break
    return seq[:, 1:]


@torch.no_grad()
def greedy(model, memory: torch.Tensor, memory_pad: torch.Tensor, vocab, max_length: int) -> torch.Tensor:
    """memory [B, T, H] -> word ids [B, <= max_length + 1]: at most ``max_length`` words, then EOS (BOS dropped;
    PAD after the end)."""
    return _decode(model, memory, memory_pad, vocab, max_length, lambda logits: no_specials(logits, vocab).argmax(-1))


@torch.no_grad()
def sample(model, memory: torch.Tensor, memory_pad: torch.Tensor, vocab, max_length: int, n: int = 1,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """n multinomial samples per memory row: memory [B, T, H] -> word ids [B * n, <= max_length + 1] (rows
    i * n .. i * n + n - 1 belong to image i; EOS then PAD after the end; BOS dropped)."""
    def draw(logits):
        probs = torch.softmax(logits.float(), dim=-1)
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)
    return _decode(model, memory.repeat_interleave(n, 0), memory_pad.repeat_interleave(n, 0), vocab, max_length, draw)


@torch.no_grad()
def beam_search(model, memory: torch.Tensor, memory_pad: torch.Tensor, vocab, max_length: int,
                beam: int = 3) -> torch.Tensor:
    """Batched beam search over all B images at once: the best of ``beam`` hypotheses by summed log-prob.

    memory [B, T, H] -> word ids [B, <= max_length + 1]."""
    if beam < 1:
        raise ValueError(f"beam={beam} must be >= 1.")
    b, dev = memory.shape[0], memory.device
    state = model.start(memory, memory_pad, group=beam)            # the beams share their image's memory
    seq = torch.full((b * beam, 1), vocab.bos, dtype=torch.long, device=dev)
    scores = torch.full((b, beam), float("-inf"), device=dev)
    scores[:, 0] = 0.0                                               # one live hypothesis per image at start
    done = torch.zeros(b * beam, dtype=torch.bool, device=dev)
    for t in range(max_length + 1):
        logp = torch.log_softmax(no_specials(model.step(seq[:, -1], state).float(), vocab), dim=-1)   # [B*K, V]
        if t == max_length:                                          # max_length words, then EOS
            logp = _end_at_limit(logp, vocab.eos)
        v = logp.shape[-1]
        finished = torch.full_like(logp, float("-inf"))
        finished[:, vocab.pad] = 0.0                                  # a finished hypothesis only pads
        logp = torch.where(done.unsqueeze(1), finished, logp)
        cand = (scores.view(-1, 1) + logp).view(b, beam * v)
        scores, idx = cand.topk(beam, dim=-1)                        # [B, K]
        src = (idx // v) + torch.arange(b, device=dev).unsqueeze(1) * beam
        tok = (idx % v).view(-1)
        src = src.view(-1)
        seq = torch.cat([seq[src], tok.unsqueeze(1)], dim=1)
        state = model.reorder(state, src)                            # src stays within each image's beams
        done = done[src] | (tok == vocab.eos)
        if done.all():
            break
    best = scores.argmax(-1) + torch.arange(b, device=dev) * beam
    return seq[best, 1:]


@torch.no_grad()
def generate(model, vocab, global_, tokens=None, patches=None, beam: int = 3, batch_size: int = 256,
             prompt=None) -> list:
    """Captions (list[str]) for cached features, in batches; PCM runs in inference mode. ``prompt`` [B, m]
    (word ids, pad = none): a hard prompt for a model that reads one (ViECap's entities)."""
    model.eval()
    out = []
    dev = next(model.parameters()).device
    for i in range(0, len(global_), batch_size):
        sl = slice(i, i + batch_size)
        args = [x[sl].to(dev) if x is not None else None for x in (global_, tokens, patches)]
        extra = {"prompt": prompt[sl].to(dev)} if prompt is not None else {}
        memory, pad = model.encode(*args, mode="inference", **extra)
        ids = (greedy(model, memory, pad, vocab, model.cfg.max_length) if beam == 1 else
               beam_search(model, memory, pad, vocab, model.cfg.max_length, beam))
        out.extend(vocab.decode(row) for row in ids)
    return out


@torch.no_grad()
def caption_images(model, vocab, clip, images, beam: int = 3, batch_size: int = 64) -> list:
    """Caption PIL images, image paths or uint8 [B, H, W, 3] arrays end to end (CLIP features -> PCM
    inference mode -> beam search)."""
    feats = clip.image_features(images, batch_size=batch_size)
    return generate(model, vocab, feats.global_, feats.tokens, feats.patches, beam=beam, batch_size=batch_size)
