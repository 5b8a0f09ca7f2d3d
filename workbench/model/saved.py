"""A saved captioner: one folder with the weights, the vocabulary, every config and the CLIP it expects, in
the ``save_pretrained`` / ``from_pretrained`` style of the libraries beside it (transformers, diffusers).

    save_pretrained(model, vocab, "runs/pcm-net-coco", clip=clip, configs={"train": asdict(tcfg)})
    model, vocab, info = from_pretrained("runs/pcm-net-coco")
    clip = load_clip(expected_clip(info))               # the CLIP it was trained on
    workbench caption runs/pcm-net-coco photos/ --out captions.json      # caption a folder

Folder: ``model.safetensors`` (weights, concept bank included), ``vocab.json``, ``config.json`` (format
version, architecture, captioner / PCM configs, feature widths, the CLIP's config and weights fingerprint,
any extra configs). Loading checks each of them and names what differs (architecture, parameter shapes,
CLIP) instead of failing inside ``load_state_dict``. Scope: the PCM-Net captioner (``captioner.Captioner``,
every method built on it); a method's own inference recipe (projection, tags, reranking) is not saved.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch

from .captioner import ARCHITECTURE, Captioner
from ..config import CaptionerConfig, ClipConfig, PCMConfig
from ..utils.io import atomic_write, atomic_write_json, weights_fingerprint
from ..utils.paths import repo_path
from .vocab import Vocabulary

FORMAT = "workbench-captioner"
VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def clip_identity(clip) -> dict:
    """What a captioner expects of its CLIP: the config that loads it and a fingerprint of its weights."""
    return {"config": asdict(clip.cfg), "fingerprint": weights_fingerprint(clip.model)}


def save_pretrained(model: Captioner, vocab: Vocabulary, folder: str | os.PathLike, clip=None,
                    configs: Optional[dict] = None) -> Path:
    """Write ``folder`` (atomically: a temporary folder renamed into place); ``configs``: any extra JSON-able
    settings to keep (training, method, data counts)."""
    from safetensors.torch import save_file
    if not isinstance(model, Captioner):
        raise TypeError(f"model is a {type(model).__name__}; save_pretrained saves the PCM-Net Captioner "
                        "(workbench.model.captioner.Captioner).")
    if len(vocab) != model.head.out_features:
        raise ValueError(f"vocab has {len(vocab)} words but the model predicts {model.head.out_features}; save "
                         "the vocabulary the model was trained with.")
    folder = repo_path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(tmp / "model.safetensors", lambda p: save_file(state, p))
    vocab.save(tmp / "vocab.json")
    atomic_write_json(tmp / "config.json", {
        "format": FORMAT, "version": VERSION, "architecture": ARCHITECTURE,
        "captioner": asdict(model.cfg), "pcm": asdict(model.pcm_cfg) if model.pcm_cfg else None,
        "dims": {"vocab_size": len(vocab), "embed_dim": model.g_proj.in_features,
                 "token_dim": model.v_proj.in_features, "n_patches": model.n_patches,
                 "concepts": int(model.bank.shape[0])},
        "clip": clip_identity(clip) if clip is not None else None, "configs": configs or {}})
    if folder.exists():
        import shutil
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"folder={str(folder)!r} holds no config.json; give a folder written by "
                                "workbench.model.saved.save_pretrained.")
    info = json.loads(path.read_text())
    if info.get("format") != FORMAT:
        raise ValueError(f"{path} is not a workbench captioner (format={info.get('format')!r}, expected {FORMAT!r}).")
    if info.get("version") != VERSION or info.get("architecture") != ARCHITECTURE:
        raise ValueError(f"{path} was saved with format version {info.get('version')} / captioner architecture "
                         f"{info.get('architecture')}; this workbench reads version {VERSION} / architecture "
                         f"{ARCHITECTURE}. Load it with the workbench version that wrote it.")
    return info


def load_weights(model: torch.nn.Module, state: dict, source: str) -> None:
    """``model.load_state_dict(state)`` that names what differs (missing, unexpected and reshaped parameters)
    instead of failing inside torch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [f"{k}: {list(state[k].shape)} in the file vs {list(own[k].shape)} here"
                for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        parts = ([f"reshaped {reshaped[:4]}"] if reshaped else []) + \
                ([f"missing {missing[:4]}"] if missing else []) + ([f"unexpected {unexpected[:4]}"] if unexpected else [])
        raise ValueError(f"the weights in {source} do not fit this {type(model).__name__}: " + "; ".join(parts) +
                         f" ({len(reshaped)} reshaped, {len(missing)} missing, {len(unexpected)} unexpected). "
                         "Build the model with the configs it was trained with.")
    model.load_state_dict(state)


def from_pretrained(folder: str | os.PathLike, clip=None, device: str | torch.device = "cpu") -> tuple:
    """-> (Captioner in eval mode, Vocabulary, info dict of config.json). With ``clip`` it must be the CLIP the
    captioner was trained on (config and weights), else a ValueError names the difference."""
    from safetensors.torch import load_file
    folder = repo_path(folder)
    info = _read_config(folder)
    if clip is not None:
        check_clip(info, clip)
    d = info["dims"]
    state = load_file(folder / "model.safetensors")
    cfg = CaptionerConfig(**info["captioner"])
    pcm_cfg = PCMConfig(**info["pcm"]) if info["pcm"] else None
    bank = state["bank"] if d["concepts"] else None
    model = Captioner(cfg, d["vocab_size"], d["embed_dim"], d["token_dim"], d["n_patches"], pcm_cfg, bank)
    load_weights(model, state, str(folder / "model.safetensors"))
    vocab = Vocabulary.load(folder / "vocab.json")
    if len(vocab) != d["vocab_size"]:
        raise ValueError(f"{folder / 'vocab.json'} has {len(vocab)} words; config.json says {d['vocab_size']}.")
    return model.to(device).eval(), vocab, info


def expected_clip(info: dict) -> ClipConfig:
    """The ClipConfig of the CLIP a saved captioner was trained on."""
    if not info.get("clip"):
        raise ValueError("this captioner was saved without its CLIP (save_pretrained(..., clip=None)); pass the "
                         "CLIP yourself.")
    return ClipConfig(**info["clip"]["config"])


def check_clip(info: dict, clip) -> None:
    """Raise a ValueError naming every difference between the saved CLIP identity and ``clip``."""
    if not info.get("clip"):
        return
    saved, here = info["clip"], clip_identity(clip)
    diffs = [f"{k}: {saved['config'].get(k)!r} saved vs {v!r} given" for k, v in here["config"].items()
             if saved["config"].get(k) != v and k != "precision"]
    if saved["fingerprint"] != here["fingerprint"]:
        diffs.append(f"weights fingerprint {saved['fingerprint']} saved vs {here['fingerprint']} given")
    if diffs:
        raise ValueError("the captioner was trained on another CLIP: " + "; ".join(diffs) +
                         ". Load the CLIP it expects: load_clip(expected_clip(info)).")


def caption_folder(folder: str | os.PathLike, images: str | os.PathLike, beam: int = 3, batch_size: int = 64,
                   clip=None, progress: bool = True) -> dict:
    """{file name: caption} for every image in ``images`` (sorted), with the saved captioner and its CLIP."""
    from tqdm.auto import tqdm

    from ..backbones.clip import load_clip
    from .decoding import caption_images
    images = Path(images)
    if not images.is_dir():
        raise FileNotFoundError(f"images={str(images)!r} is not a folder of images.")
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"images={str(images)!r} holds no {'/'.join(IMAGE_SUFFIXES)} file.")
    import warnings

    from ..corpora.readers import unreadable_images
    bad = unreadable_images([str(p) for p in files])
    if bad:                                  # named and skipped: one broken file never costs the other captions
        warnings.warn(f"{len(bad)} unreadable image(s) skipped: " + "; ".join(f"{p} ({why})" for p, why in bad.items()))
        files = [p for p in files if str(p) not in bad]
    info = _read_config(repo_path(folder))
    clip = clip or load_clip(expected_clip(info))
    model, vocab, _ = from_pretrained(folder, clip=clip, device=clip.device)
    out = {}
    for i in tqdm(range(0, len(files), batch_size), desc="caption", disable=not progress):
        chunk = files[i:i + batch_size]
        caps = caption_images(model, vocab, clip, [str(p) for p in chunk], beam=beam, batch_size=batch_size)
        out.update({p.name: c for p, c in zip(chunk, caps)})
    empty = [name for name, c in out.items() if not c.strip()]
    if empty:
        warnings.warn(f"{len(empty)} of {len(out)} captions are empty (e.g. {empty[:3]}).")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Caption a folder of images with a saved workbench captioner.")
    ap.add_argument("model", help="folder written by save_pretrained")
    ap.add_argument("images", help="folder of .jpg/.png images")
    ap.add_argument("--out", default=None, help="write the captions here in the COCO results format, "
                                                "[{image_id, file_name, caption}] (default: print)")
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)
    caps = caption_folder(args.model, args.images, args.beam, args.batch_size)
    if args.out:
        from ..corpora.readers import coco_id
        atomic_write_json(args.out, [{"image_id": coco_id(name), "file_name": name, "caption": cap}
                                     for name, cap in caps.items()])
        print(f"{len(caps)} captions -> {args.out}")
    else:
        for name, cap in caps.items():
            print(f"{name}\t{cap}")


if __name__ == "__main__":
    main()
