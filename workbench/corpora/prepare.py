"""Real data of the paper profiles: downloads (resumable, checksummed) into the data layout, and counts.

The layout under ``--root`` (default ``data/``, relative to the repository) is stated once, in
``config/layout.py``; the ``RealDataConfig``, ``ProtocolConfig`` and ``PipelineConfig`` presets point into it.

Downloads resume through HTTP Range into ``<file>.part``, are checked (size, sha256) and renamed into place;
archives are extracted into a temp folder that is renamed into place, so a folder that exists is complete.
Offline (``--offline``, or when a download fails) it prints what to put where and which paths are missing.
It always prints the counts of every corpus and split, and of the profile's configured caption files.

    workbench prepare --profile paper_b32 --corpus mscoco flickr30k
    workbench prepare --offline                      # check the layout only
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

from .readers import format_counts, image_counts, load_captions
from ..utils.io import atomic_write, atomic_write_json, sha256_file
from ..config.layout import KARPATHY_SPLITS, LAYOUT, NOCAPS_DOMAINS, SPLIT_LISTS, TRAIN_CORPORA, rebase, split_file
from ..utils.paths import repo_path

COCO_ZIPS = "http://images.cocodataset.org/zips/{}.zip"
KARPATHY_ZIP = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"
FLICKR30K_FORM = "https://shannon.cs.illinois.edu/DenotationGraph/"
IMAGE_URLS = {"train2014": COCO_ZIPS.format("train2014"), "val2014": COCO_ZIPS.format("val2014")}  # folder -> zip
# NoCaps (Agrawal et al., ICCV 2019): a test set only (val: 4,500 Open Images photos, 10 captions each, in- /
# near- / out-domain); its annotation file names every image's URL.
NOCAPS_URL = "https://s3.amazonaws.com/nocaps/" + LAYOUT["nocaps"].references


# ----------------------------------------------------------------------------- download
def download(url: str, dest: str | os.PathLike, sha256: Optional[str] = None, progress: bool = True,
             timeout: float = 60.0) -> dict:
    """Fetch ``url`` to ``dest``, resuming ``dest.part`` with an HTTP Range request; checks the size against the
    server's and ``sha256`` when given, then renames into place. Returns ``{url, file, size, sha256}``."""
    from tqdm.auto import tqdm
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file():
        digest = sha256_file(dest)
        if sha256 is None or digest == sha256:
            return {"url": url, "file": str(dest), "size": dest.stat().st_size, "sha256": digest}
        dest.unlink()                                        # corrupt: fetch again
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    total = None
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:                      # 416: the part already holds the whole file
            raise
        resp = None
    if resp is not None:
        with resp:
            if have and resp.status != 206:                  # the server ignored the Range: start over
                have = 0
            rng = resp.headers.get("Content-Range", "")
            length = resp.headers.get("Content-Length")
            total = int(rng.rsplit("/", 1)[1]) if "/" in rng and not rng.endswith("*") else (
                have + int(length) if length else None)
            with open(part, "ab" if have else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                                desc=dest.name, disable=not progress) as bar:
                try:
                    while block := resp.read(1 << 20):
                        f.write(block)
                        bar.update(len(block))
                except http.client.IncompleteRead as err:    # the connection dropped: keep the part, resume later
                    f.write(err.partial)
                    raise OSError(f"{url}: the connection dropped after {f.tell():,} bytes; rerun to resume from "
                                  f"{part}.") from err
                finally:
                    f.flush()
                    os.fsync(f.fileno())
    size = part.stat().st_size
    if total is not None and size != total:
        raise OSError(f"{url} stopped at {size:,} of {total:,} bytes; rerun to resume from {part}.")
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise ValueError(f"{url} has sha256 {digest}, expected {sha256}; the partial file was removed, rerun to "
                         "fetch it again (or fix the expected checksum).")
    os.replace(part, dest)
    return {"url": url, "file": str(dest), "size": size, "sha256": digest}


def _downloads(root: Path) -> dict:
    path = root / "downloads" / "downloads.json"
    return json.loads(path.read_text()) if path.exists() else {}


def fetch(root: Path, name: str, url: str, progress: bool = True) -> Path:
    """``download`` into ``<root>/downloads/``, checked against the sha256 recorded by an earlier download of the
    same url, and recorded in ``<root>/downloads/downloads.json`` (atomic)."""
    old = _downloads(root).get(name, {})
    dest = root / "downloads" / Path(url).name
    rec = download(url, dest, old.get("sha256") if old.get("url") == url else None, progress)
    atomic_write_json(root / "downloads" / "downloads.json", {**_downloads(root), name: rec})
    return dest


def extract_folder(zip_path: Path, folder: str, target: Path, progress: bool = True) -> Path:
    """Extract the ``folder/`` of an image archive to ``target`` through a temp folder renamed into place."""
    from tqdm.auto import tqdm
    tmp = target.parent / f".{target.name}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as zf:
        for m in tqdm(zf.infolist(), desc=f"extract {zip_path.name}", disable=not progress):
            zf.extract(m, tmp)
    src = tmp / folder if (tmp / folder).is_dir() else tmp
    os.replace(src, target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def extract_member(zip_path: Path, basename: str, target: Path) -> Path:
    """Write the archive member named ``basename`` (at any depth) to ``target`` atomically."""
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if Path(n).name == basename]
        if not names:
            raise FileNotFoundError(f"{zip_path} has no member {basename!r}; is it Karpathy's caption_datasets.zip?")
        return atomic_write(target, lambda tmp: Path(tmp).write_bytes(zf.read(names[0])))


# ----------------------------------------------------------------------------- layout
def write_split_lists(dataset_json: Path, corpus: str, items: Optional[list] = None) -> list:
    """Per-split Karpathy lists (``{split, image_name, file_path, captions}``, the format of the
    ``RealDataConfig`` / ``ProtocolConfig`` presets) next to ``dataset_json``; train = train + restval.
    ``items``: ``load_captions(dataset_json)`` when already read."""
    items = items if items is not None else load_captions(dataset_json)
    written = []
    for name, splits in SPLIT_LISTS.items():
        out = dataset_json.parent / Path(split_file(corpus, name)).name
        if out.exists() and out.stat().st_mtime >= dataset_json.stat().st_mtime:
            continue
        rows = [{"split": it.split, "image_name": it.file_name, **({"file_path": it.folder} if it.folder else {}),
                 "captions": it.captions} for it in items if it.split in splits]
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(rows)))
        written.append(out)
    return written


def _n_files(folder: Path) -> int:
    return sum(1 for e in os.scandir(folder) if e.is_file()) if folder.is_dir() else 0


def check_corpus(root: Path, corpus: str, optional=()) -> dict:
    """``{"folders": {name: (present, expected)}, "splits": {split: counts}, "missing": [(path, how to get it)]}``;
    image folders named in ``optional`` are not reported missing."""
    spec = LAYOUT[corpus]
    base = root / corpus
    out = {"folders": {}, "splits": {}, "missing": []}
    for name, expected in spec.image_folders.items():
        url = IMAGE_URLS.get(name)
        n = _n_files(base / name)
        out["folders"][name] = (n, expected)
        if n == 0 and name not in optional:
            how = (f"download {url} and unzip it in {base}/ (the archive holds {name}/)" if url else
                   f"request the Flickr30k images at {FLICKR30K_FORM} (a form; no download) and put the "
                   f"{expected:,} <flickr id>.jpg files here")
            out["missing"].append((str(base / name) + "/", how))
    karpathy = base / "karpathy" / spec.karpathy
    if not karpathy.is_file():
        out["missing"].append((str(karpathy), f"put {spec.karpathy} here, from {KARPATHY_ZIP} (the per-split "
                                              f"lists {corpus}_{{train,val,test}}.json are then written next to it)"))
        return out
    items = load_captions(karpathy)
    write_split_lists(karpathy, corpus, items)
    for split in KARPATHY_SPLITS:
        mine = [it for it in items if it.split == split]
        if mine:
            out["splits"][split] = image_counts(mine, base / spec.image_root, verify=split in ("val", "test"))
    atomic_write_json(base / "counts.json", out["splits"])
    return out


def fetch_corpus(root: Path, corpus: str, train_images: bool = True, keep_zips: bool = False,
                 progress: bool = True) -> None:
    """Download and extract what ``corpus`` lacks (network errors propagate: the caller reports them)."""
    spec, base = LAYOUT[corpus], root / corpus
    karpathy = base / "karpathy" / spec.karpathy
    if not karpathy.is_file():
        extract_member(fetch(root, "caption_datasets", KARPATHY_ZIP, progress), spec.karpathy, karpathy)
    for name in spec.image_folders:
        url = IMAGE_URLS.get(name)
        if url is None or _n_files(base / name) or (name == "train2014" and not train_images):
            continue
        zpath = fetch(root, name, url, progress)
        extract_folder(zpath, name, base / name, progress)
        if not keep_zips:
            zpath.unlink()


def check_nocaps(root: Path) -> dict:
    """``check_corpus`` for NoCaps val: the annotation file, the image folder and the counts per domain."""
    spec, base = LAYOUT["nocaps"], root / "nocaps"
    ann = base / spec.references
    out = {"folders": {"val": (_n_files(base / "val"), spec.image_folders["val"])}, "splits": {}, "missing": []}
    if not ann.is_file():
        out["missing"].append((str(ann), f"download {NOCAPS_URL} (NoCaps val references)"))
        return out
    items = load_captions(ann)
    if _n_files(base / "val") == 0:
        out["missing"].append((str(base / "val") + "/", "the images at each image's coco_url in "
                               f"{ann.name} (prepare --corpus nocaps fetches them), named <open images id>.jpg"))
    for domain in NOCAPS_DOMAINS:
        mine = [it for it in items if it.domain == domain]
        if mine:
            out["splits"][domain] = image_counts(mine, base / "val", verify=True)
    atomic_write_json(base / "counts.json", out["splits"])
    return out


def fetch_nocaps(root: Path, progress: bool = True) -> None:
    """The NoCaps val annotation file, then every image it names that is not yet in ``nocaps/val/`` (each a
    checked, atomic download: rerunning fetches only what is missing)."""
    from tqdm.auto import tqdm
    base = root / "nocaps"
    ann = base / LAYOUT["nocaps"].references
    if not ann.is_file():
        src = fetch(root, "nocaps_annotations", NOCAPS_URL, progress)
        atomic_write(ann, lambda tmp: Path(tmp).write_bytes(src.read_bytes()))
    images = json.loads(ann.read_text())["images"]
    todo = [im for im in images if not (base / "val" / im["file_name"]).is_file()]
    for im in tqdm(todo, desc="nocaps images", disable=not progress):
        download(im["coco_url"], base / "val" / im["file_name"], progress=False)


# ----------------------------------------------------------------------------- report
def config_counts(profile: str, root: str | os.PathLike = "data") -> dict:
    """Counts of the profile's configured caption files (``RealDataConfig``, ``ProtocolConfig`` test sets), their
    ``data/`` paths read under ``root``."""
    from ..config import Profile
    stages = Profile(profile)
    real = stages.real
    sets = [("RealDataConfig", real.image_dir, real.captions_file)] + [
        (f"ProtocolConfig test {t.corpus}", t.image_dir, t.captions_file) for t in stages.protocol.test_sets]
    out = {}
    for label, image_dir, captions in sets:
        image_dir, captions = rebase(image_dir, root), rebase(captions, root)
        path = repo_path(captions)
        out[f"{label} ({captions})"] = image_counts(load_captions(path), image_dir) if path.is_file() else None
    return out


def prepare(root: str | os.PathLike = "data", corpora=("mscoco", "flickr30k"), profile: str = "paper_b32",
            offline: bool = False, train_images: bool = True, keep_zips: bool = False, progress: bool = True) -> dict:
    """Fetch (unless ``offline``) and check the layout; prints and returns ``{corpus: check_corpus(...)}`` plus
    ``"configs"`` (the profile's configured files) and ``"missing"`` (every missing path)."""
    from ..config import check_choice
    check_choice("profile", profile, ("paper_b32", "paper_l14"))
    for c in corpora:
        check_choice("corpus", c, tuple(LAYOUT))
    root = repo_path(root)
    for corpus in corpora:
        if offline:
            continue
        try:
            if corpus == "nocaps":
                fetch_nocaps(root, progress)
            else:
                fetch_corpus(root, corpus, train_images, keep_zips, progress)
        except (urllib.error.URLError, OSError) as err:
            print(f"{corpus}: download failed ({err}); working offline. Put the files below by hand.")
            offline = True
    report = {c: check_nocaps(root) if c == "nocaps" else check_corpus(root, c, () if train_images else ("train2014",))
              for c in corpora}
    report["configs"] = config_counts(profile, root)
    report["missing"] = [p for c in corpora for p, _ in report[c]["missing"]]
    print(format_report(report, corpora))
    return report


def format_report(report: dict, corpora) -> str:
    lines = []
    for c in corpora:
        r = report[c]
        lines.append(f"{c}:")
        lines += [f"  {name}/: {n:,} of {exp:,} images" for name, (n, exp) in r["folders"].items()]
        lines += [f"  MISSING {path}: {how}" for path, how in r["missing"]]
        lines += [f"  {format_counts(cnt, split)}" for split, cnt in r["splits"].items()]
    lines.append("configured caption files:")
    lines += [f"  {format_counts(cnt, label)}" if cnt else f"  {label}: MISSING (prepare writes it once the Karpathy "
              "dataset_*.json of --root data is in place)"
              for label, cnt in report["configs"].items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Download and check the real data (MSCOCO, Flickr30k, Karpathy splits).")
    ap.add_argument("--profile", default="paper_b32", help="paper profile whose configured caption files to count")
    ap.add_argument("--corpus", nargs="+", default=list(TRAIN_CORPORA),
                    help=f"corpora among {tuple(LAYOUT)} (nocaps: NoCaps val, a test set)")
    ap.add_argument("--root", default="data", help="data folder (relative to the repository)")
    ap.add_argument("--offline", action="store_true", help="download nothing; check the layout and print what is missing")
    ap.add_argument("--no-train-images", action="store_true",
                    help="skip train2014.zip (13 GB): text-only training needs the train captions, not the images")
    ap.add_argument("--keep-zips", action="store_true", help="keep the image archives after extraction")
    args = ap.parse_args(argv)
    report = prepare(args.root, tuple(args.corpus), args.profile, args.offline, not args.no_train_images,
                     args.keep_zips)
    raise SystemExit(1 if report["missing"] else 0)


if __name__ == "__main__":
    main()
