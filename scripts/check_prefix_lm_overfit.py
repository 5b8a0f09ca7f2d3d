"""Does MacCap's adaptor steer the frozen LM? Overfit 8 captions from 8 fixed random region-token sets.

    .venv/bin/python scripts/check_prefix_lm_overfit.py runs/ablation/sandbox/lm/lm-<hash>   # the LM maccap-lm pretrained

Prints, every 100 full-batch Adam steps (lr 1e-3), the loss and how many of the 8 captions greedy decoding
reproduces exactly (README, MacCap's rows: 300 steps, loss 3.27 -> 1.22, 3 of 8).
"""
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
from workbench.model.decoding import greedy  # noqa: E402
from workbench.methods.prefix_lm import PrefixCaptioner, PrefixLMConfig, load_lm  # noqa: E402

lm, vocab = load_lm(sys.argv[1])
caps = ["a red star", "two blue hearts next to a green square", "a photo of a large pink heart", "an orange triangle",
        "a yellow circle above a purple star", "three grey crosses", "a small white moon", "a cyan diamond"]
torch.manual_seed(0)
tokens = F.normalize(torch.randn(8, 10, 128), dim=-1)
model = PrefixCaptioner(lm, 128, PrefixLMConfig.preset("sandbox"), 20)
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
w = vocab.encode_batch(caps)
for step in range(301):
    model.train()
    logits = model(w[:, :-1], None, tokens)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), ignore_index=vocab.pad)
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 100 == 0:
        model.eval()
        mem, pad = model.encode(None, tokens)
        out = [vocab.decode(s) for s in greedy(model, mem, pad, vocab, 20)]
        print(step, round(float(loss.detach()), 3), sum(o == c for o, c in zip(out, caps)), out[:3], flush=True)
