"""Probe caption-grammar variants text-side with a committed CLIP, before any retrain (world v7's design).

The test images and their CLIP embeddings stay fixed; each variant re-captions the scenes (test references, the
4,000-caption training memory) by patching ``workbench.sandbox.captions``' tables, then measures annotator agreement,
CLIPRe (the memory re-embedded by the CLIP's text tower) and, as a check on words the CLIP never saw, the share with
the CLIP's retrieved *scenes* kept (``fixed_share``: the retrieved scene's caption under the new grammar), and recall.
It was run with the world-v6 CLIP on world v6's code (the variants below patch v6's tables; docs/world_trials.md,
world v7), ~20 s a variant on 2 cores:

    git worktree add /tmp/v6 b8a2fa0 && cd /tmp/v6 && python /path/to/scripts/probe_caption_grammar.py base f+p0.66 v7
"""
import importlib, json, sys, time
from pathlib import Path
import numpy as np, open_clip, torch, torch.nn.functional as F
from workbench.config import Profile
from workbench.backbones.clip import load_clip
from workbench.evaluation import caption_stats as cs
from workbench.sandbox import captions as C
from workbench.sandbox.splits import load_sandbox_split
from workbench.sandbox.world import make_split

OUT = Path("runs/probe_caption_grammar"); OUT.mkdir(parents=True, exist_ok=True)
stages = Profile("sandbox"); world = stages.world
clip = load_clip(stages.clip); clip.model.eval()
img_path = OUT / "img_test5000.pt"
if not img_path.exists():
    test = load_sandbox_split(world, "test", n=5000, progress=False)
    with torch.no_grad():
        img = F.normalize(clip.image_features(test.images).global_.float(), dim=-1)
    torch.save(img, img_path)
img = torch.load(img_path)
test_scenes = make_split(world, "test", 5000)
train_scenes = make_split(world, "train", 4000)

def emb(texts):
    with torch.no_grad():
        return F.normalize(clip.text_features(texts).float(), dim=-1)

NN_V6 = cs.nearest_caption(img[:1000], emb([C.reference_captions(s)[0] for s in train_scenes])).tolist()

def measure(name, recall=True):
    t0 = time.time()
    caps = [C.reference_captions(s) for s in test_scenes]
    memory = [C.reference_captions(s)[0] for s in train_scenes]
    refs = {s.scene_id: c for s, c in zip(test_scenes[:1000], caps[:1000])}
    out = cs.caption_world(refs, memory)
    mem = emb(memory)
    out.update(cs.clip_retrieval(img[:1000], mem, refs, memory, out["agreement_cider"]))
    _, rest = cs.held_out_split(refs, 0)
    hyps = {k: memory[i] for k, i in zip(refs, NN_V6) if k in rest}
    out["fixed_share"] = 100 * cs.cider(rest, hyps) / out["agreement_cider"]
    if recall:
        rec = cs.recall_at_k(img, emb([c for cc in caps for c in cc]), per_image=5)
        out["i2t"], out["t2i"] = rec["i2t"], rec["t2i"]
    out["name"] = name; out["s"] = round(time.time() - t0)
    keep = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()
            if k in ("name", "agreement_cider", "clip_retrieval_cider", "clip_retrieval_share", "text_retrieval_share",
                     "random_share", "fixed_share", "vocabulary", "i2t", "t2i", "s")}
    print(json.dumps(keep), flush=True)
    with open(OUT / "probe.jsonl", "a") as f:
        f.write(json.dumps(keep) + "\n")
    return out

def token_lengths():
    caps = [c for s in test_scenes[:2000] for c in C.reference_captions(s)]
    tok = open_clip.get_tokenizer("ViT-B-32")
    lens = np.array([(t != 0).sum().item() for t in tok(caps, context_length=120)])
    print(json.dumps({"tokens_mean": float(lens.mean()), "p95": float(np.percentile(lens, 95)), "over32": float((lens > 32).mean()), "over40": float((lens > 40).mean())}))


# ---- the variants (v6's tables patched) ----
SHAPE_WORDS2 = {
    "cat": ["cat", "kitten", "kitty", "feline", "tabby"], "dog": ["dog", "puppy", "doggy", "pup", "hound", "canine"],
    "bird": ["bird", "songbird", "birdie", "sparrow"], "fish": ["fish", "goldfish", "trout"],
    "car": ["car", "automobile", "sedan", "hatchback", "taxi"], "bus": ["bus", "coach", "city bus", "double decker"],
    "boat": ["boat", "sailboat", "ship", "dinghy", "rowboat"], "plane": ["plane", "airplane", "aircraft", "jet", "airliner"],
    "chair": ["chair", "seat", "armchair", "stool"], "table": ["table", "desk", "coffee table"], "lamp": ["lamp", "light", "floor lamp", "lampshade"],
    "bed": ["bed", "cot", "mattress"], "tree": ["tree", "pine tree", "sapling"], "flower": ["flower", "blossom", "daisy", "bloom"],
    "cactus": ["cactus", "succulent"], "leaf": ["leaf", "frond", "maple leaf"],
}
COLOUR_WORDS2 = {"purple": ["purple", "violet", "lilac", "purplish"], "white": ["white", "off white", "ivory"],
                 "red": ["red", "bright red", "crimson", "reddish"], "orange": ["orange", "orangey", "tangerine"],
                 "yellow": ["yellow", "golden", "yellowish"], "green": ["green", "lime green", "dark green"],
                 "blue": ["blue", "dark blue", "navy", "bluish"], "pink": ["pink", "rosy", "hot pink"]}
LIST_EXTRA = ["a few things including {objs}", "{objs} in view", "an everyday scene with {objs}", "someone took a photo of {objs}",
              "a candid shot of {objs}", "what looks like {objs}", "a blurry photo of {objs}", "a nice view of {objs}",
              "it is {objs}", "{objs} in the picture", "a wide shot of {objs}", "{objs} all in one frame",
              "a simple picture of {objs}", "an old photo of {objs}", "a clear picture of {objs}", "a funny picture of {objs}"]
PLACE_EXTRA = ["{objs} out {place}", "a day {place} with {objs}", "{objs} seen {place}", "somewhere {place}, {objs}",
               "{place} there {be} {objs}", "{objs} hanging around {place}", "looking at {objs} {place}", "a view {place} of {objs}"]
V = {
  "noprops": dict(P_PROP=0.0),
  "syn": dict(SHAPE_WORDS=SHAPE_WORDS2, COLOUR_WORDS=COLOUR_WORDS2),
  "frames": dict(LIST_TEMPLATES=C.LIST_TEMPLATES + LIST_EXTRA, LIST_PLACE_TEMPLATES=C.LIST_PLACE_TEMPLATES + PLACE_EXTRA),
}
V["syn+frames"] = {**V["syn"], **V["frames"]}
V["syn+frames+prop0.7"] = {**V["syn+frames"], "P_PROP": 0.7}
V["syn+frames+prop0.8"] = {**V["syn+frames"], "P_PROP": 0.8}
V["syn+frames+prop0.8+colour0.6"] = {**V["syn+frames+prop0.8"], "P_COLOUR": 0.6}

V["v7"] = {**V["syn+frames"], "P_PROP": 0.7}          # the synonym world, tried and dropped
V["v7p75"] = {**V["syn+frames"], "P_PROP": 0.75}
V["v7p65"] = {**V["syn+frames"], "P_PROP": 0.65}
for p_prop in (0.65, 0.66, 0.68, 0.7, 0.8):             # frames + props: world v7 is "f+p0.66"
    V[f"f+p{p_prop}"] = {**V["frames"], "P_PROP": p_prop}
V["f+p0.8+less"] = {**V["f+p0.8"], "P_MENTION": (0.92, 0.4, 0.15, 0.1), "P_SIZE": 0.15, "P_PATTERN": 0.25}
V["prop0.7"], V["prop0.8"] = {"P_PROP": 0.7}, {"P_PROP": 0.8}
V["main0.75"] = {"P_MENTION": (0.75, 0.6, 0.35, 0.25)}
V["colour0.5"] = {"P_COLOUR": 0.5}
V["flat_mention"] = {"P_MENTION": (0.7, 0.6, 0.5, 0.5)}


if __name__ == "__main__":
    for name in sys.argv[1:]:
        importlib.reload(C)
        for k, val in V.get(name, {}).items():
            setattr(C, k, val)
        measure(name)
        token_lengths()
