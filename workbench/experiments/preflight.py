"""Pre-flight check of a pipeline run: everything a later stage will need, from the data layout and configs alone.

    workbench pipeline --profile paper_b32 --train mscoco --check      # only this; exit 1 on a problem

Runs before any stage (``Pipeline.run`` calls it) and lists every problem at once, each naming the flag or file
that fixes it: caption files readable in a format the stage accepts; enough training captions for the concept
bank's ``min_count`` and for the batch size x processes; val and test image folders present; the CLIP and
text-to-image weights present and of the preset's architecture; the output folder writable with disk for the
synthetic set. Warnings (a warm-up longer than the run, a missing test set, weights the hub cache must hold) do
not stop the run.
"""
from __future__ import annotations

import math
import os
import shutil
import uuid
from dataclasses import dataclass, field

from ..config import PipelineConfig
from ..utils.paths import repo_path


@dataclass
class Report:
    errors: list = field(default_factory=list)      # (problem, fix)
    warnings: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        lines = [f"pre-flight: {len(self.errors)} problem(s), {len(self.warnings)} warning(s)"]
        lines += [f"  problem: {p}\n     fix: {f}" for p, f in self.errors]
        lines += [f"  warning: {p}\n     fix: {f}" for p, f in self.warnings]
        return "\n".join(lines)


def _is_path(s: str) -> bool:
    """A local file or folder rather than a hub id ("org/name") or an open_clip tag ("openai")."""
    return (s.startswith(("/", ".", "~", "data/", "runs/")) or s.endswith((".safetensors", ".pt", ".bin", ".pth"))
            or repo_path(s).exists())


def _captions(cfg: PipelineConfig, rep: Report) -> list:
    from ..corpora.readers import load_caption_corpus
    path = repo_path(cfg.train_captions)
    if not path.is_file():
        rep.errors.append((f"training captions {path} do not exist",
                           f"--train-captions FILE (or `workbench prepare --corpus {cfg.train_corpus}`)"))
        return []
    try:
        caps, _ = load_caption_corpus(path, cfg.train_splits)
    except (ValueError, OSError) as err:
        rep.errors.append((f"training captions unreadable: {err}", "--train-captions FILE in an accepted format"))
        return []
    return caps[:cfg.n_train] if cfg.n_train else caps


def _concepts(cfg: PipelineConfig, caps: list, rep: Report) -> None:
    from ..features.concepts import count_nouns, select_vocabulary
    ccfg = cfg.stages.concepts
    counts = count_nouns(caps)
    words = select_vocabulary(counts, ccfg)
    rep.facts["concepts"] = len(words)
    if not words:
        top = sorted(counts.values(), reverse=True)
        hint = f"--min-count {top[min(4, len(top) - 1)]} (five concepts on this text)" if top else "more captions"
        rep.errors.append((f"no noun occurs at least min_count={ccfg.min_count} times in {len(caps)} training "
                           "captions: the concept bank (PCM's Eq. 1) would be empty",
                           f"{hint}, or --n-train with more captions"))


def _training(cfg: PipelineConfig, n: int, processes: int, rep: Report) -> None:
    t = cfg.stages.train
    if t.batch_size * processes > n:
        rep.errors.append((f"batch_size={t.batch_size} x {processes} process(es) exceeds the {n} training pairs",
                           f"--batch-size {max(1, n // processes)} or more captions (--n-train)"))
        return
    steps = t.epochs * math.ceil(n / (t.batch_size * processes))
    rep.facts["train_steps"] = steps
    if t.warmup_steps > steps:
        peak = steps / t.warmup_steps       # the Noam schedule's share of its peak at the run's last step
        rep.warnings.append((f"the warm-up of {t.warmup_steps} steps is longer than the run's {steps} steps: the "
                             f"learning rate stays under {peak:.0%} of its peak", f"--warmup {max(1, steps // 10)}"))


def _reference_set(ref, role: str, rep: Report) -> bool:
    from ..corpora.readers import caption_file_counts
    cap, img = repo_path(ref.captions_file), repo_path(ref.image_dir)
    problem = None
    if not cap.is_file():
        problem = (f"{role} captions {cap} do not exist", f"`workbench prepare --corpus {ref.corpus}`")
    elif not img.is_dir():
        problem = (f"{role} image folder {img} does not exist", f"put the {ref.corpus} images there "
                   f"(`workbench prepare --corpus {ref.corpus}` prints the layout)")
    else:
        try:
            n = caption_file_counts(cap, img)
        except (ValueError, OSError) as err:
            problem = (f"{role} captions unreadable: {err}", f"fix {cap}")
        else:
            rep.facts[f"{role}:{ref.corpus}"] = n
            if not n["images_present"]:
                problem = (f"none of the {n['images']} {role} images of {cap} is in {img}",
                           f"put the {ref.corpus} images in {img}")
    if problem:
        (rep.errors if role == "val" else rep.warnings).append(problem)
    return problem is None


def _weights(cfg: PipelineConfig, rep: Report) -> None:
    from ..backbones.clip import checkpoint_architecture
    clip = cfg.stages.clip
    p = cfg.clip_pretrained or clip.pretrained
    if p and _is_path(p):
        path = repo_path(p)
        if not path.is_file():
            rep.errors.append((f"CLIP weights {path} do not exist", "--clip-pretrained FILE"))
        else:
            problem = checkpoint_architecture(path, clip.model_name)
            if problem:
                rep.errors.append((problem, f"--clip-pretrained with a {clip.model_name} checkpoint"))
    elif p and os.environ.get("HF_HUB_OFFLINE"):
        rep.warnings.append((f"CLIP weights {clip.model_name}:{p} come from the Hugging Face cache (offline)",
                             "--clip-pretrained FILE if the cache does not hold them"))
    model = cfg.synthesis_model or cfg.stages.synthesis.model_id
    if cfg.synthetic_images is not None:                          # bring your own: no text-to-image model needed
        for what, path, kind in (("synthetic_images", cfg.synthetic_images, "dir"),
                                 ("synthetic_index", cfg.synthetic_index, "file")):
            p = repo_path(path)
            if not (p.is_dir() if kind == "dir" else p.is_file()):
                rep.errors.append((f"{what}={path!r} is not a {'folder' if kind == 'dir' else 'file'}",
                                   f"--{what.replace('_', '-')} {'FOLDER' if kind == 'dir' else 'FILE'}"))
        return
    if _is_path(model):
        if not (repo_path(model) / "model_index.json").is_file():
            rep.errors.append((f"{repo_path(model)} is not a diffusers pipeline folder (no model_index.json)",
                               "--synthesis-model FOLDER saved with save_pretrained"))
    elif os.environ.get("HF_HUB_OFFLINE"):
        rep.warnings.append((f"the text-to-image model {model} comes from the Hugging Face cache (offline)",
                             "--synthesis-model FOLDER if the cache does not hold it"))


def _output(cfg: PipelineConfig, n: int, rep: Report) -> None:
    out = repo_path(cfg.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        rep.errors.append((f"output folder {out} is not writable ({err})", "--out FOLDER"))
        return
    syn = cfg.stages.synthesis
    need = 0 if cfg.synthetic_images else int(n * syn.height * syn.width * 3 * 0.5)   # PNGs: about half the raw bytes
    have = shutil.disk_usage(out).free
    rep.facts["synthetic_bytes_estimate"] = need
    if need > have:
        rep.errors.append((f"the synthetic set needs about {need / 1e9:.1f} GB; {out} has {have / 1e9:.1f} GB free",
                           "--out on a larger disk, or fewer captions (--n-train)"))


def _methods(cfg: PipelineConfig, rep: Report) -> None:
    """Names registered; the unpaired images folder there when a method trains or aligns on unpaired images."""
    from .. import methods
    try:
        names = methods.expand(list(cfg.methods))
    except ValueError as err:
        rep.errors.append((str(err), "--methods with registered names or groups (workbench ablation --help)"))
        return
    real = [n for n in names if methods.get(n).needs_scene_renders()]
    if real:
        rep.errors.append((f"{', '.join(real)} train on real renders of the training captions' own scenes, which only "
                           "the sandbox world has (a caption corpus has no image drawn from each caption)",
                           "drop them from --methods (the sandbox leaderboard has them: workbench ablation)"))
    need = [n for n in names if methods.get(n).needs_unpaired()]
    if need and cfg.unpaired_images is None:
        rep.errors.append((f"{', '.join(need)} train or align on real images without their captions (unpaired "
                           "images), and none are configured",
                           "--unpaired-images FOLDER (real photos whose captions are not in the training text, e.g. "
                           "MSCOCO train2014 images outside --n-train), or drop those methods"))
    elif need and not repo_path(cfg.unpaired_images).is_dir():
        rep.errors.append((f"unpaired_images={cfg.unpaired_images!r} is not a folder", "--unpaired-images FOLDER"))


def check(cfg: PipelineConfig, processes: int = 1) -> Report:
    """Every problem a run of ``cfg`` on ``processes`` processes would meet, found before any stage runs."""
    rep = Report()
    caps = _captions(cfg, rep)
    rep.facts["train_captions"] = len(caps)
    if caps:
        _concepts(cfg, caps, rep)
        _training(cfg, len(caps), processes, rep)
    _reference_set(cfg.val, "val", rep)
    present = [_reference_set(t, "test", rep) for t in cfg.test_sets]
    if not any(present):
        rep.errors.append(("no test set can be scored (see the warnings)", "--test with a prepared corpus"))
    _weights(cfg, rep)
    _output(cfg, len(caps), rep)
    _methods(cfg, rep)
    return rep
