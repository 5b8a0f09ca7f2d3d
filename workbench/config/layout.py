"""The real-data folder layout, stated once: what ``workbench prepare`` fills under ``data/`` (or ``--root``), and
where every config that reads real data points (``RealDataConfig``, ``ProtocolConfig``, ``PipelineConfig``)::

    data/mscoco/train2014/COCO_train2014_%012d.jpg     82,783 images   (Karpathy train)
    data/mscoco/val2014/COCO_val2014_%012d.jpg         40,504 images   (Karpathy restval, val, test)
    data/mscoco/karpathy/dataset_coco.json             the Karpathy splits (caption_datasets.zip)
    data/mscoco/karpathy/mscoco_{train,val,test}.json  per-split lists written from it (train = train + restval)
    data/flickr30k/images/<flickr id>.jpg              31,783 images   (Karpathy train, val, test)
    data/flickr30k/karpathy/dataset_flickr30k.json
    data/flickr30k/karpathy/flickr30k_{train,val,test}.json
    data/nocaps/nocaps_val_4500_captions.json          NoCaps val references (COCO format, a domain per image)
    data/nocaps/val/<open images id>.jpg               4,500 images    (a test set only)
    data/downloads/downloads.json                      url, size and sha256 of every download
    data/<corpus>/counts.json                          captions, images present / missing per split

    reference_set("flickr30k", "test")   # ReferenceSetConfig("flickr30k", "data/flickr30k/images", ".../flickr30k_test.json")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

ROOT = "data"
SPLIT_LISTS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}   # per-split list -> Karpathy splits
KARPATHY_SPLITS = tuple(s for splits in SPLIT_LISTS.values() for s in splits)    # the splits of dataset_*.json
NOCAPS_DOMAINS = ("in-domain", "near-domain", "out-domain")


@dataclass(frozen=True)
class CorpusLayout:
    image_folders: dict             # folder under <root>/<corpus>/ -> the number of images it holds
    image_root: str                 # the folder a reference's image name resolves from ("": the corpus folder)
    eval_images: str                # the folder of the val / test images
    karpathy: Optional[str] = None  # Karpathy's dataset_*.json under karpathy/ (None: a test set only)
    references: Optional[str] = None  # a test set's own reference file (NoCaps)


LAYOUT = {
    "mscoco": CorpusLayout({"train2014": 82783, "val2014": 40504}, "", "val2014", karpathy="dataset_coco.json"),
    "flickr30k": CorpusLayout({"images": 31783}, "images", "images", karpathy="dataset_flickr30k.json"),
    "nocaps": CorpusLayout({"val": 4500}, "val", "val", references="nocaps_val_4500_captions.json"),
}
TRAIN_CORPORA = tuple(k for k, v in LAYOUT.items() if v.karpathy)


@dataclass(frozen=True)
class ReferenceSetConfig:
    """One real test set: the corpus it belongs to, its images and its references (Karpathy list or COCO json)."""
    corpus: str
    image_dir: str
    captions_file: str


def _corpus(corpus: str) -> CorpusLayout:
    if corpus not in LAYOUT:
        raise ValueError(f"corpus={corpus!r} is not in the data layout; choose one of {tuple(LAYOUT)}.")
    return LAYOUT[corpus]


def karpathy_file(corpus: str, root=None) -> str:
    """Karpathy's ``dataset_*.json`` of a training corpus (what a pipeline trains on)."""
    lay = _corpus(corpus)
    if not lay.karpathy:
        raise ValueError(f"corpus={corpus!r} is a test set only (no Karpathy file); train on one of {TRAIN_CORPORA}.")
    return f"{root or ROOT}/{corpus}/karpathy/{lay.karpathy}"


def split_file(corpus: str, split: str, root=None) -> str:
    """The per-split Karpathy list ``prepare`` writes next to the dataset json (``SPLIT_LISTS``)."""
    if split not in SPLIT_LISTS:
        raise ValueError(f"split={split!r}; choose one of {tuple(SPLIT_LISTS)}.")
    return f"{root or ROOT}/{corpus}/karpathy/{corpus}_{split}.json"


def reference_set(corpus: str, split: str = "test", root=None) -> ReferenceSetConfig:
    """The images and references of ``corpus``'s ``split`` (NoCaps: its val, whatever ``split`` says)."""
    lay = _corpus(corpus)
    base = f"{root or ROOT}/{corpus}"
    refs = f"{base}/{lay.references}" if lay.references else split_file(corpus, split, root)
    return ReferenceSetConfig(corpus, f"{base}/{lay.eval_images}", refs)


def rebase(path: str, root) -> str:
    """A layout path ``data/...`` read under another data folder ``root`` (``--root``); other paths unchanged."""
    from pathlib import Path
    if root is None or not str(path).startswith(ROOT + "/"):
        return path
    return str(Path(root) / str(path)[len(ROOT) + 1:])
