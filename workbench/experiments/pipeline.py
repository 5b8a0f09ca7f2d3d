"""One command from a caption corpus to in-domain and cross-domain tables, for every profile.

    workbench pipeline --profile paper_l14 --train mscoco --test mscoco flickr30k
    workbench pipeline --profile paper_b32 --methods all --seeds 0 1 2 --unpaired-images DIR
    workbench pipeline --profile sandbox            # the sandbox study (PCM-Net's ablation)

Stages (each resumable and skipped when its outputs match): data (training text, val / test counts) ->
synthesis (one image per caption, scored by the profile's CLIP) -> features (streamed from the image files)
-> caption embeddings -> concepts -> vocabulary -> (unpaired images) -> for every method x seed: training
(through ``runner.fit_method``, the sandbox's runner; checkpoint picked on real val images) -> the saved
captioner (``pretrained.save_pretrained``) -> evaluation of every test set through the method's inference
recipe (a missing set is reported, the others are scored) -> ``results.md``. Everything lands in ``out_dir``: ``pipeline.json`` (the stages, their counts and seconds),
``vocab.json``, ``synthetic/``, ``features/``, ``runs/``, ``captioner/``, ``results.{md,csv}`` and
``captions-<corpus>.json`` (COCO results format: ``[{image_id, caption}]``, scored by ``workbench score``). Paths and model ids are config fields (``PipelineConfig``); the real data layout is
the one ``workbench prepare`` writes and checks.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..config import carryover as R
from ..config import ClipConfig, PipelineConfig, ProtocolConfig, resolve
from ..utils.io import atomic_write, atomic_write_json, stable_hash
from ..utils.paths import repo_path
from ..utils.tables import markdown_table


class Pipeline:
    """The stages of ``cfg`` around a CLIP and a text-to-image pipeline (passed in, or loaded from the presets
    and overrides by ``run``); ``self.state`` is what ``pipeline.json`` records."""

    def __init__(self, cfg: PipelineConfig, clip=None, pipe=None, progress: bool = True):
        self.cfg, self.clip, self.pipe, self.progress = cfg, clip, pipe, progress
        self.out = repo_path(cfg.out_dir)
        self.state = {"config": json.loads(json.dumps(asdict(cfg), default=str)), "stages": [],
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "outcome": "running"}
        self.history = self._previous_runs()
        self.feat = replace(cfg.stages.features, root=str(self.out / "features"))
        self.main, self.ps = True, None
        self._tests = {}                      # per run, shared by every method x seed: loaded sets, keys, counts

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
        base = self.cfg.stages.clip
        return replace(base, pretrained=self.cfg.clip_pretrained) if self.cfg.clip_pretrained else base

    def synthesis_config(self):
        over = {"out_dir": str(self.out / "synthetic")}
        if self.cfg.synthesis_model:
            over["model_id"] = self.cfg.synthesis_model
        return replace(self.cfg.stages.synthesis, **over)

    # ------------------------------------------------------------------ stages
    def data(self) -> tuple:
        """(training captions, their ids); counts of the training text and of the val / test sets."""
        from ..corpora.readers import caption_file_counts, load_caption_corpus
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
        from ..synthesis.engine import SynthesisEngine, load_pipeline
        t0, syn_cfg = time.time(), self.synthesis_config()
        if self.cfg.synthetic_images is not None:                # bring your own: verified, hashed, scored
            if not self.main:
                return []                                        # the main process imports; the others read
            from ..synthesis.imported import format_report, import_images
            records, report = import_images(self.cfg.synthetic_images, self.cfg.synthetic_index, caps, ids,
                                            syn_cfg.out_dir, self.clip, progress=self.progress)
            print(f"[synthesis] imported: {format_report(report)}")
            self._done("synthesis", t0, images=len(records), imported_from=self.cfg.synthetic_images, report=report,
                       scorer=f"{self.clip.cfg.model_name}:{self.clip.cfg.pretrained}")
            return records
        pipe = self.pipe if self.pipe is not None else load_pipeline(syn_cfg)
        records = SynthesisEngine(pipe, syn_cfg, scorer=self.clip).run(caps, ids, progress=self.progress)
        self._done("synthesis", t0, images=len(records), model_id=syn_cfg.model_id,
                   scorer=f"{self.clip.cfg.model_name}:{self.clip.cfg.pretrained}")     # the pipeline's own CLIP
        return records

    def features(self, records: list):
        from ..features.cache import extract_image_features
        t0 = time.time()
        paths = [str(self.out / "synthetic" / r["file"]) for r in records]          # streamed from the files
        src = stable_hash([r["sha256"] for r in records])
        store = extract_image_features(self.clip, paths, [r["caption_id"] for r in records], f"synthetic-{src[:12]}",
                                       self.feat, source_id=src, progress=self.progress, split=True)
        self._done("features", t0, images=len(store))
        return store

    def concepts_and_vocab(self, caps: list) -> tuple:
        from ..features.concepts import build_concept_bank
        from ..model.vocab import Vocabulary
        t0 = time.time()
        bank = build_concept_bank(caps, self.clip, self.cfg.stages.concepts)
        vocab = Vocabulary.build(caps, min_count=self.cfg.vocab_min_count,
                                 max_length=self.cfg.stages.captioner.max_length)
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
        from ..corpora.readers import RealImages
        return val, RealImages(paths, [list(r) for r in val.refs], list(val.ids))

    def text_features(self, caps: list, ids: list):
        """The CLIP embeddings of the training captions (the text-only methods' inputs, DeCap's memory, ...)."""
        from ..features.cache import extract_text_features
        t0 = time.time()
        with self._state().main_process_first():
            store = extract_text_features(self.clip, caps, ids, f"text-{stable_hash([caps, ids])[:12]}", self.feat,
                                          progress=self.progress)
        self._done("text features", t0, captions=len(store))
        return store

    def unpaired(self):
        """Features of ``unpaired_images`` (sorted file names, first ``n_unpaired``), or None when not configured."""
        from ..features.cache import extract_image_features
        c = self.cfg
        if c.unpaired_images is None:
            return None
        t0 = time.time()
        folder = repo_path(c.unpaired_images)
        if not folder.is_dir():
            raise FileNotFoundError(f"unpaired_images={c.unpaired_images!r} is not a folder; point --unpaired-images "
                                    "at real images whose captions are not in the training text.")
        paths = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        paths = paths[:c.n_unpaired] if c.n_unpaired else paths
        if len(paths) < 2:
            raise ValueError(f"unpaired_images={c.unpaired_images!r} holds {len(paths)} image(s); give at least 2.")
        src = stable_hash([(os.path.basename(p), os.path.getsize(p)) for p in paths])
        with self._state().main_process_first():
            store = extract_image_features(self.clip, paths, [os.path.basename(p) for p in paths],
                                           f"unpaired-{src[:12]}", self.feat, source_id=src, progress=self.progress)
        self._done("unpaired images", t0, images=len(store))
        return store

    def prepare(self):
        """data -> synthesis -> features -> caption embeddings -> concepts -> vocabulary -> the val set (and the
        unpaired images when configured), as an ``experiment.Experiment`` with the fields the sandbox's has:
        ``sets["synthetic"]`` and ``sets["text"]``, the caption groups of each image (Karpathy: its five
        captions), ``unpaired``, ``evals["val"]``, ``bank``, ``vocab``. Every registered method trains on it."""
        import torch

        from ..backbones.clip import load_clip
        from ..corpora.readers import caption_groups
        from .experiment import Experiment
        from ..synthesis.engine import read_manifest
        from ..training import CaptionSet
        ps = self._state()
        self.out.mkdir(parents=True, exist_ok=True)
        self.clip = self.clip or load_clip(self.clip_config())
        caps, ids = self.data()
        records = self.synthesis(caps, ids)
        ps.wait_for_everyone()
        if not self.main:
            records = read_manifest(self.out / "synthetic")              # every process trains on all of them
        store = self.features(records)                           # every process encodes its share of the shards
        captions = [r["caption"] for r in records]
        text = self.text_features(captions, [r["caption_id"] for r in records])
        with ps.main_process_first():
            bank, vocab = self.concepts_and_vocab(captions)
        cos = torch.tensor([r["clip_cos"] for r in records])
        cos = R.cxe_cosines(cos, R.backbone_of(self.clip))    # the identity on the paper's CLIPs
        rows = list(range(len(records)))
        sets = {"synthetic": CaptionSet(store, rows, captions, cos), "text": CaptionSet(text, rows, captions,
                                                                                       global_key="text")}
        evals = {"val": self.val_set()}
        groups = caption_groups([r["caption_id"] for r in records])
        identity = stable_hash({"train": sets["synthetic"].identity(), "val": evals["val"][0].ids,
                                "vocab": vocab.itos, "bank": bank.words})
        return Experiment(self.ablation_config(len(captions)), sets, evals, bank, vocab, captions,
                          [[captions[j] for j in g] for g in groups], text, self.unpaired(),
                          SyntheticImages(self.out / "synthetic", records), cos, self.clip.temperature, identity,
                          self.clip, R.derived(R.backbone_of(self.clip), len(bank.words)), groups)

    def ablation_config(self, n_train: int):
        """The stage presets as the methods read them from ``exp.cfg`` (the sandbox's ``AblationConfig``)."""
        from ..config import AblationConfig
        return AblationConfig(n_train=max(n_train, 2), variants=self.methods(), seeds=self.cfg.run_seeds(),
                              profile=self.cfg.profile, overrides=self.cfg.overrides, out_dir=str(self.out))

    def methods(self) -> tuple:
        from ..methods import expand
        return expand(list(self.cfg.methods))

    def train_config(self):
        return replace(self.cfg.stages.train, seed=self.cfg.seed, run_dir=str(self.out / "runs"))

    def train(self, exp, name: str = "pcm-net", seed=None):
        """One registered method (the stages' presets; on a paper profile its paper's settings for the training
        corpus and, for a paper decoder, its paper's training hyperparameters, below the user's flags) on ``exp``,
        through the runner every profile uses (``runner.fit_method``: ``Method.fit``, the checkpoint picked on
        val) -> (method, model)."""
        from .runner import fit_method
        from ..methods import get
        t0, c = time.time(), self.cfg
        seed = c.seed if seed is None else seed
        method = get(name, c.profile, c.train_corpus)
        paper = method.paper_training(c.train_corpus) if c.profile.startswith("paper") else {}
        mine = c.stages.overrides_of("train")                                               # the user's flags win
        self.tcfg = replace(method.train_config(self.train_config()), seed=seed,
                            **{k: v for k, v in paper.items() if k not in mine})
        model, hist = fit_method(method, exp, c.stages.captioner, c.stages.pcm, self.tcfg, seed, self.progress)
        val = exp.evals["val"][0]
        self._done("training", t0, method=method.name, seed=seed, pairs=len(exp.captions), val_images=len(val.ids),
                   epochs=len(hist["val_cider"]),
                   best_val_cider=round(max(hist["val_cider"]), 4) if hist["val_cider"] else None)
        return method, model.eval()

    def save(self, model, vocab, folder: str = "captioner") -> None:
        """The trained captioner as a folder ``pretrained.load_pretrained`` reads (a plain ``Captioner``; a method
        that wraps it, e.g. SynTIC's or ViECap's, keeps its checkpoint under ``runs/``)."""
        from ..model.captioner import Captioner
        from ..model.saved import save_pretrained
        t0 = time.time()
        if not isinstance(model, Captioner):
            self._done("captioner", t0, folder=None, note=f"{type(model).__name__}: checkpoint under runs/ only")
            return
        out = save_pretrained(model, vocab, self.out / folder, clip=self.clip, configs={
            "pipeline": self.state["config"], "train": asdict(self.tcfg),
            "synthesis": asdict(self.synthesis_config()), "counts": self.state["stages"][0]})
        self._done("captioner", t0, folder=str(out))

    def single(self) -> bool:
        """One method and one seed: the run keeps the plain file names and the metric table of one captioner."""
        return len(self.methods()) == 1 and len(self.cfg.run_seeds()) == 1

    def tag(self, method, seed: int) -> str:
        """'' for a single run (``single``), else '<method>-s<seed>-'."""
        from ..methods import file_stem
        return "" if self.single() else f"{file_stem(method.name)}-s{seed}-"

    def protocol(self) -> ProtocolConfig:
        c = self.cfg
        return ProtocolConfig(train_corpus=c.train_corpus, test_sets=c.test_sets, max_images=c.max_test_images,
                              beam=c.beam, on_unreadable=c.on_unreadable)

    def test_sets(self, what: str):
        """What every method x seed of this run reads of the test sets, computed once: ``"images"`` (which images
        are there: the results' key), ``"counts"`` (each set's listed / present / missing images) and ``"loaded"``
        (the sets themselves: images verified, features cached; only when some result must be computed)."""
        from ..corpora.readers import caption_file_counts
        from .protocols import images_identity, load_test_sets
        if what not in self._tests:
            tests = self.cfg.test_sets
            if what == "images":
                self._tests[what] = [images_identity(t) for t in tests]
            elif what == "counts":
                self._tests[what] = {t.corpus: caption_file_counts(repo_path(t.captions_file), repo_path(t.image_dir))
                                     for t in tests}
            else:
                self._tests[what] = load_test_sets(self.clip, self.protocol(), self.feat, self.progress)
        return self._tests[what]

    def evaluate(self, model, vocab, method=None, exp=None, seed=None) -> list:
        """Every test set scored (or reported missing) through ``method``'s inference recipe; rows carry the set's
        counts, the method and the seed; cached by a key of the captioner's weights, the method and the set."""
        from ..utils.io import weights_fingerprint
        from .protocols import run_protocol
        t0, c = time.time(), self.cfg
        seed = c.seed if seed is None else seed
        tag = self.tag(method, seed) if method is not None else ""
        cache = self.out / (f"results/{tag}results.json" if tag else "results.json")
        key = stable_hash({"weights": weights_fingerprint(model), "tests": [asdict(t) for t in c.test_sets],
                           "images": self.test_sets("images"),                       # which images are there
                           "max": c.max_test_images, "beam": c.beam,
                           "method": [method.name, method.options()] if method is not None else None})
        if cache.exists() and json.loads(cache.read_text()).get("key") == key:
            rows = json.loads(cache.read_text())["rows"]
            self._done("evaluation", t0, method=getattr(method, "name", None), seed=seed, sets=len(rows), cached=True)
            return rows
        rows = run_protocol(model, vocab, self.clip, self.protocol(), self.feat, progress=self.progress,
                            method=method, exp=exp, loaded=self.test_sets("loaded"))
        for row in rows:
            if method is not None:
                row.update({"model": method.name, "seed": seed, **method.describe()})
            if row["status"] == "scored" and "hyps" in row:          # a set's overall row (not a domain's)
                n = self.test_sets("counts")[row["test_corpus"]]
                row.update({"captions": row["references"], "images_listed": n["images"],
                            "images_present": n["images_present"], "images_missing": n["images_missing"]})
                hyps = row.pop("hyps")
                atomic_write_json(self.out / f"captions-{tag}{row['test_corpus']}.json",   # COCO results format
                                  [{"image_id": k, "caption": v} for k, v in hyps.items()])
        atomic_write_json(cache, {"key": key, "rows": rows})
        self._done("evaluation", t0, method=getattr(method, "name", None), seed=seed, sets=len(rows),
                   scored=sum(r["status"] == "scored" for r in rows))
        return rows

    def report(self, rows: list) -> str:
        """``results.md`` (and ``results.csv`` for one run): one run: the metric table by protocol; several
        methods or seeds: one leaderboard per test protocol (mean ± sample std over seeds, the paper's reported
        number beside each row). Then the counts table."""
        from .runner import leaderboard_markdown
        from ..evaluation.metrics import write_table
        scored = [r for r in rows if r["status"] == "scored"]
        if self.single():
            md = write_table(scored, self.out / "results", group_key="protocol")["markdown"] if scored else ""
        else:
            md = "\n\n".join(f"### {proto}\n\n{leaderboard_markdown(board)}"
                             for proto, board in protocol_boards(rows).items())
        first = {}
        for r in rows:                                         # the counts of each set, once
            first.setdefault(r["protocol"], r)
        md = (md + "\n\n" + counts_markdown(list(first.values()))).strip() + "\n"
        atomic_write(self.out / "results.md", lambda tmp: Path(tmp).write_text(md))
        print(md)
        return md

    def _move_aside_stale(self, corpora: set) -> None:
        """Results this run no longer produces (captions of a test set dropped from ``--test`` or of a method dropped
        from ``--methods``: ``corpora`` names the ``<tag><corpus>`` this run writes; the old tables) go to
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
        self._tests = {}                                  # read the test sets afresh for this run
        try:
            self.preflight()
            exp = self.prepare()
            rows, expected = [], set()
            for name in self.methods():
                for seed in self.cfg.run_seeds():
                    method, model = self.train(exp, name, seed)
                    if self.main:
                        tag, vocab = self.tag(method, seed), method.vocabulary(exp)
                        self.save(model, vocab, f"captioners/{tag.rstrip('-')}" if tag else "captioner")
                        rows += self.evaluate(model, vocab, method, exp, seed)
                        expected |= {f"{tag}{t.corpus}" for t in self.cfg.test_sets}
            if self.main:
                self._move_aside_stale(expected)
                self.report(rows)
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
        from ..synthesis.engine import load_images
        items = self.records[index]
        return load_images(self.root, items if isinstance(items, list) else [items])[0 if isinstance(index, int) else
                                                                                      slice(None)]


def protocol_boards(rows: list) -> dict:
    """{protocol: leaderboard} of the scored ``rows`` (mean ± sample std over seeds, one row per method)."""
    from .runner import leaderboard
    scored = [r for r in rows if r["status"] == "scored"]
    return {p: leaderboard([r for r in scored if r["protocol"] == p],
                           metrics=("CIDEr", "Bleu_4", "METEOR", "ROUGE_L", "CLIPScore"))
            for p in dict.fromkeys(r["protocol"] for r in scored)}


def counts_markdown(rows: list) -> str:
    """The sizes behind each row: images scored, their references, images listed / present / missing / unreadable
    (skipped, named in the row's ``unreadable``), status."""
    out = [[r["protocol"], r["status"].split(":")[0], r["images"]] + [r.get(k, "n/a") for k in (
            "captions", "images_listed", "images_present", "images_missing", "images_unreadable")]
           for r in rows if r.get("subset") in (None, "overall")]     # a domain's row: a part of its set
    return markdown_table(["protocol", "status", "images scored", "references scored", "images listed", "present",
                           "missing", "unreadable"], out)


# flag -> (stage.field or PipelineConfig field): the settings a researcher changes; --set reaches the rest.
STAGE_FLAGS = {"min_count": "concepts.min_count", "epochs": "train.epochs", "batch_size": "train.batch_size",
               "warmup": "train.warmup_steps", "lr": "train.lr", "steps": "synthesis.steps",
               "guidance": "synthesis.guidance", "synthesis_batch": "synthesis.batch_size"}
PIPELINE_FLAGS = ("train_captions", "n_train", "n_val", "max_test_images", "clip_pretrained", "synthesis_model",
                  "beam", "seed", "on_unreadable", "unpaired_images", "n_unpaired", "synthetic_images",
                  "synthetic_index")


def config_from_args(args) -> PipelineConfig:
    """The run's config: the profile's layout, the flags, then ``--set STAGE.FIELD=VALUE`` (validated)."""
    from ..config.stages import parse_set
    over = {k: getattr(args, k) for k in PIPELINE_FLAGS if getattr(args, k) is not None}
    if args.out is not None:
        over["out_dir"] = args.out
    sets = [(key, getattr(args, flag)) for flag, key in STAGE_FLAGS.items() if getattr(args, flag) is not None]
    if args.resolution is not None:
        sets += [("synthesis.height", args.resolution), ("synthesis.width", args.resolution)]
    sets += [parse_set(item) for item in args.set or []]
    if args.methods is not None:
        from ..methods import expand
        over["methods"] = expand(args.methods)              # refuses an unknown name with the list of names
    if args.seeds is not None:
        over["seeds"] = tuple(args.seeds)
    return PipelineConfig.for_corpora(resolve(args.profile).name, args.train, tuple(args.test), root=args.root,
                                      overrides=tuple(sets), **over)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Caption corpus -> synthetic images -> PCM-Net -> in/cross-domain tables.")
    ap.add_argument("--profile", default=None, choices=("sandbox", "paper_b32", "paper_l14", "tiny"),
                    help="the profile (default: WORKBENCH_PROFILE, else sandbox)")
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
    ap.add_argument("--methods", default=None,
                    help="registered methods to train and score: names, groups or 'all', comma-separated "
                         "(default pcm-net; `workbench ablation --help` lists the groups)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds of every method (default: --seed)")
    ap.add_argument("--unpaired-images", default=None,
                    help="a folder of real images whose captions are not trained on (cmsa's RL, ucc+mean)")
    ap.add_argument("--n-unpaired", type=int, default=None, help="first N unpaired images (default: all)")
    ap.add_argument("--synthetic-images", default=None,
                    help="use this folder of existing synthetic images instead of synthesising (with --synthetic-index)")
    ap.add_argument("--synthetic-index", default=None,
                    help="JSON / CSV mapping caption id -> image file relative to --synthetic-images")
    ap.add_argument("--set", action="append", metavar="STAGE.FIELD=VALUE",
                    help="any other stage setting, e.g. --set pcm.k=3 (stages: synthesis, train, concepts, "
                         "captioner, pcm, features, clip); repeatable; recorded in pipeline.json")
    ap.add_argument("--check", action="store_true", help="only the pre-flight check: list every problem, exit 1 on any")
    return ap


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    args.profile = resolve(args.profile).name
    if args.profile == "sandbox":                 # the sandbox study: the same stages on the procedural world
        given = [f"--{k.replace('_', '-')}" for k in (*PIPELINE_FLAGS, "out", "root", *STAGE_FLAGS, "resolution",
                                                      "set", "check", "methods", "seeds")
                 if getattr(args, k) not in (None, False)]
        if given:
            raise ValueError(f"--profile sandbox runs the sandbox study (`workbench ablation`), which takes no "
                             f"{', '.join(given)}; use `workbench ablation --help` for its options, or a paper profile.")
        from . import runner
        return runner.main(["--preset", "sandbox"])
    cfg = config_from_args(args)
    if args.check:
        from .preflight import check
        rep = check(cfg)
        print(rep.text() if rep.errors or rep.warnings else "pre-flight: no problem found")
        raise SystemExit(0 if rep.ok else 1)
    Pipeline(cfg).run()


if __name__ == "__main__":
    main()
