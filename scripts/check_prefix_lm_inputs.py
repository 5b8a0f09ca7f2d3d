"""Can MacCap's adaptor read the sandbox's region tokens? Train it on the frozen sandbox LM as ``maccap-lm`` does
(region-noise tokens of the training captions' CLIP text features) and, as a diagnostic only, on the same tokens
centred on the training mean (the cone the sandbox CLIP puts every caption in removed); report the val cross-entropy
(no label smoothing) with each caption's own tokens and with shuffled ones (the gap is what the tokens carry), the
LM alone, and the spread of the prefix across captions.

    .venv/bin/python scripts/check_prefix_lm_inputs.py runs/ablation/sandbox/lm/lm-<hash> [steps]

README, MacCap's rows, quotes its output.
"""
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
from workbench.backbones.clip import load_clip  # noqa: E402
from workbench.config import Profile  # noqa: E402
from workbench.methods.maccap import region_noise_tokens  # noqa: E402
from workbench.methods.prefix_lm import PrefixCaptioner, PrefixLMConfig, load_lm  # noqa: E402
from workbench.sandbox.splits import load_sandbox_split  # noqa: E402

P = Profile("sandbox")
lm, vocab = load_lm(sys.argv[1])
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1500           # maccap-lm's budget: 24 epochs x 4,000 / 64
clip = load_clip(P.clip)
train = load_sandbox_split(P.world, "train", n=4000, progress=False)
val = load_sandbox_split(P.world, "val", n=512, progress=False)
caps, vcaps = [c[0] for c in train.captions], [c[0] for c in val.captions]
with torch.no_grad():
    t = F.normalize(clip.text_features(caps).float(), dim=-1)       # [4000, D]
    vt = F.normalize(clip.text_features(vcaps).float(), dim=-1)     # [512, D]
mu = t.mean(0)
var = P.captioner.noise_variance
w, vw = vocab.encode_batch(caps), vocab.encode_batch(vcaps)
x, y = vw[:, :-1], vw[:, 1:]


def ce(logits):
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=vocab.pad))


print(f"mean cosine between training captions {float((t @ t.T).mean()):.3f} (real ViT-B/32: 0.51); "
      f"noise variance {var}; {steps} adaptor steps of batch 64")
with torch.no_grad():
    print(f"LM alone: val CE {ce(lm(input_ids=x, attention_mask=(x != vocab.pad).long()).logits):.3f}")
perm = torch.randperm(len(vt), generator=torch.Generator().manual_seed(0))
for name, prep in (("raw tokens (the method)", lambda f: f),
                   ("centred tokens (diagnostic)", lambda f: F.normalize(f - mu, dim=-1))):
    torch.manual_seed(0)
    model = PrefixCaptioner(lm, t.shape[1], PrefixLMConfig.preset("sandbox"), vocab.max_length)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        model.train()
        idx = torch.randint(0, len(t), (64,), generator=g)
        logits = model(w[idx, :-1], None, region_noise_tokens(prep(t[idx]), 10, var))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[idx, 1:].reshape(-1), ignore_index=vocab.pad)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
    model.eval()
    with torch.no_grad():
        tok = region_noise_tokens(prep(vt), 10, var)
        own, shuffled = ce(model(x, None, tok)), ce(model(x, None, tok[perm]))
        prefix, _ = model.encode(None, tok)
        spread = float(prefix.std(0).norm(dim=-1).mean() / prefix.norm(dim=-1).mean())
    print(f"{name}: val CE own {own:.3f}, shuffled {shuffled:.3f} (gap {shuffled - own:.3f}); prefix spread {spread:.3f}",
          flush=True)
