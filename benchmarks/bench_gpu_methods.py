"""Throughput of every registered method and of the synthesis engine at the paper presets' sizes, on random weights
of the real architectures (issue 24 item 7). Run by hand on a GPU machine, as one script; never by a test:

    python benchmarks/bench_gpu_methods.py                                  # ViT-B/32 and ViT-L/14, every method
    python benchmarks/bench_gpu_methods.py --backbones ViT-B-32 --methods capdec,decap,pcm-net --n-train 2048
    python benchmarks/bench_gpu_methods.py --smoke                          # the CPU check: tiny CLIP, 2 methods

Methods: each registered method (``--methods``: names, groups or ``all``; the oracle rows train on renders of the
training captions, which only the sandbox world has, and are measured the same way) is built with the paper
profile's captioner / train presets (batch size, width, layers) around an untrained open_clip model of the named
architecture (``pretrained=None``: 224 px, 7x7 or 16x16 patches, D = 512 / 768), on an experiment of sandbox
captions whose images the CLIP encodes at its own resolution; the timings are the method's own ``fit`` (one epoch:
captions/s, features cached beforehand as in every run) and its own inference recipe on the test set's cached
features (decode images/s: beam 3, MacCap's samples and rerank, SynTIC's tags and projection included), with the
CLIP's image tower timed on the same images (encode images/s; inference = both in a row). Synthesis: ``SynthesisEngine``
(shards, manifest, CLIPScore of every pair) against a bare ``StableDiffusionPipeline`` call on the same random
SD-1.5-shaped pipeline (UNet 320/640/1280/1280 with cross-attention on the first three levels, 512 px, 4 latent
channels, ViT-L/14's text tower), fp16 on a GPU: the ratio says what the engine costs over diffusers.

Writes ``--out`` (JSON: the device, every figure, the settings) and prints a table.
"""
import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from workbench import methods
from workbench.backbones.clip import load_clip
from workbench.config import ClipConfig, DiffusionConfig, Profile
from workbench.utils.device import resolve_device

SD15 = dict(image_size=512, vae_channels=(128, 256, 512, 512), unet_channels=(320, 640, 1280, 1280),
            cross_attention_levels=(0, 1, 2), unet_layers_per_block=2, text_time_embedding=False,
            attention_head_dim=8, norm_groups=32, vae_latent_channels=4)
PROFILE_OF = {"ViT-B-32": "paper_b32", "ViT-L-14": "paper_l14"}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_methods(arch: str, names, n_train: int, n_test: int, device: str, work: Path, smoke: bool) -> list:
    """captions/s of one training epoch and images/s of inference for each method on ``arch``'s shapes."""
    from workbench.backbones.sandbox_sd import build_untrained_pipeline
    from workbench.experiments.experiment import prepare_sandbox
    clip = load_clip(ClipConfig.preset("tiny") if smoke else ClipConfig(model_name=arch, pretrained=None),
                     device=device)
    stages = Profile("tiny" if smoke else PROFILE_OF[arch])
    pipe = build_untrained_pipeline(DiffusionConfig.preset("tiny"), clip, work / "tok").to(device)
    abl = replace(Profile("tiny").ablation, n_train=n_train, n_val=8, n_test=n_test, n_test_unseen=2,
                  out_dir=str(work / f"exp-{arch}"))
    exp = prepare_sandbox(abl, clip, pipe=pipe, progress=False)
    images = exp.evals["test"][1].images                     # uint8 [n_test, 64, 64, 3], resized by the CLIP
    clip.image_features(images[:8])                          # warm-up
    _sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        clip.image_features(images)
    _sync(device)
    encode = n_test / (time.perf_counter() - t0)             # images/s of the CLIP's image tower (global + patches)
    rows = []
    for name in names:
        method = methods.get(name, stages.name)
        tcfg = replace(method.train_config(stages.train), epochs=1, run_dir=str(work / f"runs-{arch}"),
                       val_size=8)
        model = method.build(exp, stages.captioner, stages.pcm, 0)
        _sync(device)
        t0 = time.perf_counter()
        method.fit(model, exp, tcfg, f"{method.train_name()}-bench", progress=False)
        _sync(device)
        train_s = time.perf_counter() - t0
        evalset = method.eval_set(exp, "test")              # the method's inference recipe on cached features
        t0 = time.perf_counter()
        with torch.no_grad():
            evalset.captions(model.eval(), method.vocabulary(exp), tcfg.beam_size)
        _sync(device)
        decode = n_test / (time.perf_counter() - t0)
        rows.append({"backbone": arch, "method": method.name, "batch": tcfg.batch_size,
                     "train_captions_per_s": round(n_train / train_s, 1), "encode_images_per_s": round(encode, 1),
                     "decode_images_per_s": round(decode, 1),
                     "infer_images_per_s": round(1 / (1 / encode + 1 / decode), 1)})
        print(rows[-1], flush=True)
    return rows


def bench_synthesis(n: int, batch: int, steps: int, device: str, work: Path, smoke: bool) -> dict:
    """images/s of ``SynthesisEngine`` vs a bare pipeline call on the same random SD-1.5-shaped pipeline."""
    from workbench.backbones.sandbox_sd import build_untrained_pipeline
    from workbench.synthesis.engine import SynthesisEngine, sandbox_captions
    cfg = DiffusionConfig.preset("tiny") if smoke else replace(DiffusionConfig.preset("tiny"), **SD15)
    clip = load_clip(ClipConfig.preset("tiny") if smoke else ClipConfig(model_name="ViT-L-14", pretrained=None),
                     device=device)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    pipe = build_untrained_pipeline(cfg, clip, work / "sd-tok").to(device, dtype)
    captions, ids, _ = sandbox_captions("train", n)
    syn = replace(Profile("tiny").synthesis, steps=steps, batch_size=batch, height=cfg.image_size,
                  width=cfg.image_size, dtype="fp16" if dtype == torch.float16 else "fp32",
                  out_dir=str(work / "synthetic"))
    gen = torch.Generator(device="cpu")
    pipe(captions[:batch], num_inference_steps=steps, height=cfg.image_size, width=cfg.image_size,
         generator=gen, output_type="np")                                  # warm-up (kernels, allocator)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        pipe(captions[i:i + batch], num_inference_steps=steps, height=cfg.image_size, width=cfg.image_size,
             guidance_scale=syn.guidance, generator=gen.manual_seed(i), output_type="np")
    _sync(device)
    bare = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    SynthesisEngine(pipe, syn, scorer=clip).run(captions, ids, progress=False)
    _sync(device)
    engine = n / (time.perf_counter() - t0)
    return {"images": n, "batch": batch, "steps": steps, "size": cfg.image_size, "dtype": syn.dtype,
            "bare_images_per_s": round(bare, 2), "engine_images_per_s": round(engine, 2),
            "engine_over_bare": round(engine / bare, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=list(PROFILE_OF), choices=list(PROFILE_OF))
    ap.add_argument("--methods", default=None, help="names, groups or 'all' (workbench.methods; default all, "
                                                    "smoke: capdec,decap)")
    ap.add_argument("--n-train", type=int, default=4096, help="training captions of the timed epoch")
    ap.add_argument("--n-test", type=int, default=500, help="test images of the timed inference")
    ap.add_argument("--n-synth", type=int, default=64, help="images of each synthesis timing")
    ap.add_argument("--synth-batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50, help="denoising steps (SD 1.5's default: 50)")
    ap.add_argument("--smoke", action="store_true", help="tiny CLIP and SD, 2 methods, a few captions (CPU check)")
    ap.add_argument("--out", default="benchmarks/gpu_throughput.json")
    args = ap.parse_args()
    if args.smoke:
        args.backbones, args.n_train, args.n_test = ["ViT-B-32"], 32, 8
        args.methods = args.methods or "capdec,decap"
        args.n_synth, args.synth_batch, args.steps = 4, 2, 2
    device = str(resolve_device())
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}")
    names = methods.expand(args.methods or "all")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [r for arch in args.backbones
                for r in bench_methods(arch, names, args.n_train, args.n_test, device, work, args.smoke)]
        synth = bench_synthesis(args.n_synth, args.synth_batch, args.steps, device, work, args.smoke)
    print("\n| backbone | method | batch | train captions/s | encode images/s | decode images/s | inference images/s |"
          "\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['method']} | {r['batch']} | {r['train_captions_per_s']} | "
              f"{r['encode_images_per_s']} | {r['decode_images_per_s']} | {r['infer_images_per_s']} |")
    print(f"\nsynthesis ({synth['size']} px, {synth['steps']} steps, batch {synth['batch']}, {synth['dtype']}): bare "
          f"diffusers {synth['bare_images_per_s']} images/s, engine {synth['engine_images_per_s']} "
          f"(x{synth['engine_over_bare']})")
    out = {"device": name, "torch": torch.__version__, "settings": vars(args), "methods": rows, "synthesis": synth}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
