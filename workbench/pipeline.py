"""One command from a caption corpus to in-domain and cross-domain tables, for every profile.

    python -m workbench.pipeline --profile paper_l14 --train mscoco --test mscoco flickr30k
    python -m workbench.pipeline --profile sandbox            # the sandbox study (PCM-Net's ablation)

Stages (each resumable and skipped when its outputs match): data (training text, val / test counts) ->
synthesis (one image per caption, scored by the profile's CLIP) -> features (streamed from the image files)
-> concepts -> vocabulary -> training (PCM-Net, checkpoint picked on real val images) -> the saved captioner
(``pretrained.save_pretrained``) -> evaluation of every test set (a missing set is reported, the others are
scored). Everything lands in ``out_dir``: ``pipeline.json`` (the stages, their counts and seconds),
``vocab.json``, ``synthetic/``, ``features/``, ``runs/``, ``captioner/``, ``results.{md,csv}`` and
``captions-<corpus>.json`` (COCO results format: ``[{image_id, caption}]``, scored by ``workbench score``). Paths and model ids are config fields (``PipelineConfig``); the real data layout is
the one ``python -m workbench.prepare`` writes and checks.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace

from .config import carryover as R
from .config import ClipConfig, PipelineConfig, ProtocolConfig
from .paths import atomic_write_json, repo_path, stable_hash


class Pipeline:
    """The stages of ``cfg`` around a CLIP and a text-to-image pipeline (passed in, or loaded from the presets
    and overrides by ``run``); ``self.state`` is what ``pipeline.json`` records."""

    def __init__(self, cfg: PipelineConfig, clip=None, pipe=None, progress: bool = True):
        self.cfg, self.clip, self.pipe, self.progress = cfg, clip, pipe, progress
        self.out = repo_path(cfg.out_dir)
        self.state = {"config": json.loads(json.dumps(asdict(cfg), default=str)), "stages": [],
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "outcome": "running"}
        self.history = self._previous_runs()
        self.feat = replace(cfg.stage("features"), root=str(self.out / "features"))
        self.main, self.ps = True, None

    # ------------------------------------------------------------------ bookkeeping
    def _previous_runs(self) -> list:
        """The runs ``pipeline.json`` already records (a file from before the history: one run)."""
        path = self.out / "pipeline.json"
        if not path.exists():
            return []
        old = json.loads(path.read_text())
        return old.get("runs") or ([{k: old[k] for k in ("config", "stages") if k in old}] if "stages" in old else [])

    def _write_state(self) -> None:
        """``pipeline.json``: this run's config and stages on top, every run (this one last) under ``runs``; atomic."""
        if self.main:
            atomic_write_json(self.out / "pipeline.json", {**self.state, "runs": self.history + [self.state]})

    def _done(self, stage: str, t0: float, **info) -> None:
        self.state["stages"].append({"stage": stage, "seconds": round(time.time() - t0, 1), **info})
        if not self.main:
            return
        self._write_state()
        print(f"[{stage}] " + ", ".join(f"{k}={v}" for k, v in info.items() if not isinstance(v, (dict, list))))

    def clip_config(self) -> ClipConfig:
        base = self.cfg.stage("clip")
        return replace(base, pretrained=self.cfg.clip_pretrained) if self.cfg.clip_pretrained else base

    def synthesis_config(self):
        over = {"out_dir": str(self.out / "synthetic")}
        if self.cfg.synthesis_model:
            over["model_id"] = self.cfg.synthesis_model
        return replace(self.cfg.stage("synthesis"), **over)

    # ------------------------------------------------------------------ stages
    def data(self) -> tuple:
        """(training captions, their ids); counts of the training text and of the val / test sets."""
        from .data import caption_file_counts, load_caption_corpus
        t0, c = time.time(), self.cfg
        caps, ids = load_caption_corpus(repo_path(c.train_captions), c.train_splits)
        caps, ids = (caps[:c.n_train], ids[:c.n_train]) if c.n_train else (caps, ids)
        sets = {}
        for ref in (c.val,) + tuple(c.test_sets):
            try:
                sets[f"{ref.corpus}:{ref.captions_file}"] = caption_file_counts(repo_path(ref.captions_file),
                                                                                repo_path(ref.image_dir))
            except FileNotFoundError as e:
                sets[f"{ref.corpus}:{ref.captions_file}"] = {"missing": str(e)}
        self._done("data", t0, train_captions=len(caps), sets=sets)
        return caps, ids

    def synthesis(self, caps: list, ids: list) -> list:
        from .synthesis import SynthesisEngine, load_pipeline
        t0, syn_cfg = time.time(), self.synthesis_config()
        pipe = self.pipe if self.pipe is not None else load_pipeline(syn_cfg)
        records = SynthesisEngine(pipe, syn_cfg, scorer=self.clip).run(caps, ids, progress=self.progress)
        self._done("synthesis", t0, images=len(records), model_id=syn_cfg.model_id,
                   scorer=f"{self.clip.cfg.model_name}:{self.clip.cfg.pretrained}")     # the pipeline's own CLIP
        return records

    def features(self, records: list):
        from .features import extract_image_features
        t0 = time.time()
        paths = [str(self.out / "synthetic" / r["file"]) for r in records]          # streamed from the files
        src = stable_hash([r["sha256"] for r in records])
        store = extract_image_features(self.clip, paths, [r["caption_id"] for r in records], f"synthetic-{src[:12]}",
                                       self.feat, source_id=src, progress=self.progress, split=True)
        self._done("features", t0, images=len(store))
        return store

    def concepts_and_vocab(self, caps: list) -> tuple:
        from .concepts import build_concept_bank
        from .vocab import Vocabulary
        t0 = time.time()
        bank = build_concept_bank(caps, self.clip, self.cfg.stage("concepts"))
        vocab = Vocabulary.build(caps, min_count=self.cfg.vocab_min_count,
                                 max_length=self.cfg.stage("captioner").max_length)
        if self.main:
            vocab.save(self.out / "vocab.json")
        self._done("concepts+vocabulary", t0, concepts=len(bank), words=len(vocab))
        return bank, vocab

    def val_set(self) -> tuple:
        """The checkpoint-selection set (real val images, first ``n_val``) -> (EvalSet, RealImages)."""
        from .protocols import load_test_set
        c = self.cfg
        with self._state().main_process_first():                 # the main process caches, the others read
            val, paths, *_ = load_test_set(self.clip, c.val, self.feat, c.n_val, self.progress)
        from .data import RealImages
        return val, RealImages(paths, [list(r) for r in val.refs], list(val.ids))

    def prepare(self):
        """data -> synthesis -> features -> concepts -> vocabulary -> the val set, as an ``experiment.Experiment``
        (``sets["synthetic"]``, ``evals["val"]``, ``bank``, ``vocab``) that the registered methods train on."""
        import torch

        from .backbones import load_clip
        from .experiment import Experiment
        from .synthesis import read_manifest
        from .training import CaptionSet
        ps = self._state()
        self.out.mkdir(parents=True, exist_ok=True)
        self.clip = self.clip or load_clip(self.clip_config())
        caps, ids = self.data()
        records = self.synthesis(caps, ids)
        ps.wait_for_everyone()
        if not self.main:
            records = read_manifest(self.out / "synthetic")              # every process trains on all of them
        store = self.features(records)                           # every process encodes its share of the shards
        with ps.main_process_first():
            bank, vocab = self.concepts_and_vocab([r["caption"] for r in records])
        cos = torch.tensor([r["clip_cos"] for r in records])
        cos = R.cxe_cosines(cos, R.backbone_of(self.clip))    # the identity on the paper's CLIPs
        train = CaptionSet(store, list(range(len(records))), [r["caption"] for r in records], cos)
        evals = {"val": self.val_set()}
        identity = stable_hash({"train": train.identity(), "val": evals["val"][0].ids, "vocab": vocab.itos,
                                "bank": bank.words})
        return Experiment(None, {"synthetic": train}, evals, bank, vocab, train.captions, None, None, None,
                          SyntheticImages(self.out / "synthetic", records), cos, self.clip.temperature, identity,
                          self.clip)

    def train_config(self):
        return replace(self.cfg.stage("train"), seed=self.cfg.seed, run_dir=str(self.out / "runs"))

    def train(self, exp):
        """PCM-Net (the registered method, the stages' presets) on ``exp``, checkpoint picked on val."""
        from .methods import get
        from .training import train_captioner
        t0, c = time.time(), self.cfg
        method = get("pcm-net", c.stages)
        model = method.build(exp, c.stage("captioner"), c.stage("pcm"), c.seed)
        self.tcfg = method.train_config(self.train_config())
        val = exp.evals["val"][0]
        hist = train_captioner(model, exp.vocab, method.train_set(exp), val, self.tcfg, f"pcm-net-s{c.seed}",
                               progress=self.progress)
        self._done("training", t0, pairs=len(exp.captions), val_images=len(val.ids), epochs=len(hist["val_cider"]),
                   best_val_cider=round(max(hist["val_cider"]), 4) if hist["val_cider"] else None)
        return model.eval()

    def save(self, model, vocab) -> None:
        from .pretrained import save_pretrained
        t0 = time.time()
        folder = save_pretrained(model, vocab, self.out / "captioner", clip=self.clip, configs={
            "pipeline": self.state["config"], "train": asdict(self.tcfg),
            "synthesis": asdict(self.synthesis_config()), "counts": self.state["stages"][0]})
        self._done("captioner", t0, folder=str(folder))

    def evaluate(self, model, vocab) -> list:
        """Every test set scored (or reported missing); rows carry the set's counts; cached by a key of the
        captioner's weights and the set."""
        from .data import caption_file_counts
        from .evaluation import write_table
        from .paths import weights_fingerprint
        from .protocols import run_protocol
        t0, c = time.time(), self.cfg
        cache = self.out / "results.json"
        from .protocols import images_identity
        key = stable_hash({"weights": weights_fingerprint(model), "tests": [asdict(t) for t in c.test_sets],
                           "images": [images_identity(t) for t in c.test_sets],     # which images are there
                           "max": c.max_test_images, "beam": c.beam})
        if cache.exists() and json.loads(cache.read_text()).get("key") == key:
            rows = json.loads(cache.read_text())["rows"]
        else:
            proto = ProtocolConfig(train_corpus=c.train_corpus, test_sets=c.test_sets, max_images=c.max_test_images,
                                   beam=c.beam, on_unreadable=c.on_unreadable)
            rows = run_protocol(model, vocab, self.clip, proto, self.feat, progress=self.progress)
            self._move_aside_stale({t.corpus for t in c.test_sets})
            tests = {t.corpus: t for t in c.test_sets}
            for row in rows:
                test = tests[row["test_corpus"]]
                if row["status"] == "scored" and "hyps" in row:          # a set's overall row (not a domain's)
                    n = caption_file_counts(repo_path(test.captions_file), repo_path(test.image_dir))
                    row.update({"captions": row["references"], "images_listed": n["images"],
                                "images_present": n["images_present"], "images_missing": n["images_missing"]})
                    hyps = row.pop("hyps")
                    atomic_write_json(self.out / f"captions-{test.corpus}.json",       # COCO results format
                                      [{"image_id": k, "caption": v} for k, v in hyps.items()])
            atomic_write_json(cache, {"key": key, "rows": rows})
        scored = [r for r in rows if r["status"] == "scored"]
        md = write_table(scored, self.out / "results", group_key="protocol")["markdown"] if scored else ""
        md = (md + "\n\n" + counts_markdown(rows)).strip() + "\n"
        (self.out / "results.md").write_text(md)
        self._done("evaluation", t0, sets=len(rows), scored=len(scored))
        print(md)
        return rows

    def _move_aside_stale(self, corpora: set) -> None:
        """Results this run no longer produces (captions of a test set dropped from ``--test``, the old tables) go to
        ``stale/<time>/``: nothing beside the new table describes another run."""
        stale = [p for p in self.out.glob("captions-*.json") if p.stem[len("captions-"):] not in corpora]
        stale += [p for p in (self.out / "results.md", self.out / "results.csv") if p.exists()]
        if not stale:
            return
        dest = self.out / "stale" / time.strftime("%Y%m%d-%H%M%S")
        dest.mkdir(parents=True, exist_ok=True)
        for p in stale:
            p.rename(dest / p.name)

    def preflight(self):
        """``preflight.check`` on this run's processes; every problem at once as a ValueError before any stage."""
        from .preflight import check
        rep = check(self.cfg, processes=self._state().num_processes)
        self.state["preflight"] = {"errors": rep.errors, "warnings": rep.warnings, "facts": rep.facts}
        if not rep.ok:
            raise ValueError(rep.text())
        if rep.warnings and self.main:
            print(rep.text())
        return rep

    def _state(self):
        """accelerate's process state (CPU processes: gloo); ``self.main`` on the main process."""
        if getattr(self, "ps", None) is None:
            import torch
            from accelerate import PartialState
            self.ps = PartialState(cpu=not torch.cuda.is_available())
            self.main = self.ps.is_main_process
        return self.ps

    def run(self) -> list:
        """All stages. Under ``accelerate launch`` / ``torchrun``: synthesis and feature extraction split their
        shards, training its batches (data-parallel); the concept, vocabulary and val caches are built on the main
        process first and the others read them;
        saving and evaluation run on the main process only (the others return [])."""
        try:
            self.preflight()
            exp = self.prepare()
            model = self.train(exp)
            rows = []
            if self.main:
                self.save(model, exp.vocab)
                rows = self.evaluate(model, exp.vocab)
        except BaseException as err:                   # the history keeps what failed, and the finished stages
            self.state["outcome"] = f"failed: {type(err).__name__}: {str(err)[:300]}"
            if self.out.exists():
                self._write_state()
            raise
        self.state["outcome"] = "finished"
        self._write_state()
        return rows


class SyntheticImages:
    """The synthetic images of manifest ``records`` under ``root``, read from their files when sliced
    (uint8 [n, H, W, 3]); nothing is held in memory."""

    def __init__(self, root, records: list):
        self.root, self.records = root, records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        from .synthesis import load_images
        items = self.records[index]
        return load_images(self.root, items if isinstance(items, list) else [items])[0 if isinstance(index, int) else
                                                                                      slice(None)]


def counts_markdown(rows: list) -> str:
    """The sizes behind each row: images scored, their references, images listed / present / missing / unreadable
    (skipped, named in the row's ``unreadable``), status."""
    lines = ["| protocol | status | images scored | references scored | images listed | present | missing | unreadable |",
             "|---|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if r.get("subset") in (None, "overall")):       # a domain's row: a part of its set
        cells = [r["protocol"], r["status"].split(":")[0], r["images"]] + [r.get(k, "n/a") for k in (
            "captions", "images_listed", "images_present", "images_missing", "images_unreadable")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


# flag -> (stage.field or PipelineConfig field): the settings a researcher changes; --set reaches the rest.
STAGE_FLAGS = {"min_count": "concepts.min_count", "epochs": "train.epochs", "batch_size": "train.batch_size",
               "warmup": "train.warmup_steps", "lr": "train.lr", "steps": "synthesis.steps",
               "guidance": "synthesis.guidance", "synthesis_batch": "synthesis.batch_size"}
PIPELINE_FLAGS = ("train_captions", "n_train", "n_val", "max_test_images", "clip_pretrained", "synthesis_model",
                  "beam", "seed", "on_unreadable")


def config_from_args(args) -> PipelineConfig:
    """The run's config: the profile's layout, the flags, then ``--set STAGE.FIELD=VALUE`` (validated)."""
    from .config.pipeline import parse_set
    over = {k: getattr(args, k) for k in PIPELINE_FLAGS if getattr(args, k) is not None}
    if args.out is not None:
        over["out_dir"] = args.out
    sets = [(key, getattr(args, flag)) for flag, key in STAGE_FLAGS.items() if getattr(args, flag) is not None]
    if args.resolution is not None:
        sets += [("synthesis.height", args.resolution), ("synthesis.width", args.resolution)]
    sets += [parse_set(item) for item in args.set or []]
    return PipelineConfig.for_corpora(args.profile, args.train, tuple(args.test), root=args.root,
                                      overrides=tuple(sets), **over)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Caption corpus -> synthetic images -> PCM-Net -> in/cross-domain tables.")
    ap.add_argument("--profile", default="paper_b32", choices=("sandbox", "paper_b32", "paper_l14", "tiny"))
    ap.add_argument("--train", default="mscoco", choices=("mscoco", "flickr30k"), help="the training text's corpus")
    ap.add_argument("--test", nargs="+", default=["mscoco", "flickr30k"],
                    help="test sets: mscoco / flickr30k (Karpathy test splits), nocaps (NoCaps val, by domain)")
    ap.add_argument("--train-captions", default=None, help="override the training text (any caption corpus file)")
    ap.add_argument("--n-train", type=int, default=None, help="first N training captions (default: all)")
    ap.add_argument("--n-val", type=int, default=None, help="val images that pick the checkpoint (default 500)")
    ap.add_argument("--max-test-images", type=int, default=None)
    ap.add_argument("--clip-pretrained", default=None, help="local open_clip checkpoint (default: the preset's)")
    ap.add_argument("--synthesis-model", default=None, help="local diffusers pipeline folder (default: the preset's)")
    ap.add_argument("--out", default=None, help="output folder (default runs/pipeline/<profile>-<train>)")
    ap.add_argument("--root", default=None, help="the data folder of the prepare layout (default data/)")
    ap.add_argument("--min-count", type=int, default=None, help="concept bank: nouns seen at least this often")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None, help="training batch per process")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps of the learning rate")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--steps", type=int, default=None, help="synthesis: denoising steps")
    ap.add_argument("--guidance", type=float, default=None, help="synthesis: classifier-free guidance scale")
    ap.add_argument("--resolution", type=int, default=None, help="synthesis: image side in pixels")
    ap.add_argument("--synthesis-batch", type=int, default=None, help="synthesis: images per batch")
    ap.add_argument("--beam", type=int, default=None)
    ap.add_argument("--on-unreadable", choices=("skip", "fail"), default=None,
                    help="a test image that does not decode: skip it (named, counted; default) or fail")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--set", action="append", metavar="STAGE.FIELD=VALUE",
                    help="any other stage setting, e.g. --set pcm.k=3 (stages: synthesis, train, concepts, "
                         "captioner, pcm, features, clip); repeatable; recorded in pipeline.json")
    ap.add_argument("--check", action="store_true", help="only the pre-flight check: list every problem, exit 1 on any")
    return ap


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.profile == "sandbox":                 # the sandbox study: the same stages on the procedural world
        given = [f"--{k.replace('_', '-')}" for k in (*PIPELINE_FLAGS, "out", "root", *STAGE_FLAGS, "resolution",
                                                      "set", "check") if getattr(args, k) not in (None, False)]
        if given:
            raise ValueError(f"--profile sandbox runs the sandbox study (`workbench ablation`), which takes no "
                             f"{', '.join(given)}; use `workbench ablation --help` for its options, or a paper profile.")
        from . import ablation
        return ablation.main(["--preset", "sandbox"])
    cfg = config_from_args(args)
    if args.check:
        from .preflight import check
        rep = check(cfg)
        print(rep.text() if rep.errors or rep.warnings else "pre-flight: no problem found")
        raise SystemExit(0 if rep.ok else 1)
    Pipeline(cfg).run()


if __name__ == "__main__":
    main()
