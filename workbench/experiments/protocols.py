"""Scoring a trained captioner on real test sets: the in-domain and cross-domain protocols.

PCM-Net reports in-domain results (trained on MSCOCO text, tested on the MSCOCO Karpathy test split;
the same for Flickr30k) and cross-domain ones (MSCOCO -> Flickr30k and Flickr30k -> MSCOCO). A
``ProtocolConfig`` names the training corpus and the test sets (images + Karpathy list or COCO-format
references); every set is captioned through PCM's inference mode and scored with pycocoevalcap and
CLIPScore / RefCLIPScore. Image features are cached like every other image set (``features.py``).

    rows = run_protocol(model, vocab, clip, Profile("paper_b32").protocol)
    evaluation.write_table(rows, "runs/protocols/coco", group_key="protocol")
"""
from __future__ import annotations

import os
from typing import NamedTuple, Optional

from ..config import FeatureConfig, ProtocolConfig, ReferenceSetConfig
from ..config.layout import NOCAPS_DOMAINS
from ..utils.paths import repo_path
from ..utils.io import stable_hash


def evaluate_captioner(model, vocab, evalset, clip, beam: int) -> tuple:
    """pycocoevalcap metrics + CLIPScore / RefCLIPScore of the model's captions of ``evalset`` (an
    ``EvalSet`` of cached features); returns (metrics, hyps)."""
    from ..evaluation.metrics import clip_scores, coco_metrics
    hyps = evalset.captions(model, vocab, beam)
    metrics = coco_metrics(evalset.references(), dict(zip(evalset.ids, hyps)))
    metrics.update(clip_scores(clip, evalset.global_, hyps, evalset.refs))
    return metrics, hyps


def images_identity(test: ReferenceSetConfig) -> str:
    """A key of which images of ``test`` are there (names, sizes, modification times) and of its reference file;
    "missing" when the folder or file is absent. A result cached under it goes stale when an image is added or
    replaced."""
    from ..corpora.readers import present_items
    try:
        found = present_items(test.image_dir, test.captions_file, "ReferenceSetConfig")
    except (FileNotFoundError, ValueError):
        return "missing"
    cap = repo_path(test.captions_file)
    return stable_hash([str(cap), os.path.getsize(cap), os.path.getmtime(cap),
                        [(os.path.basename(p), os.path.getsize(p), os.stat(p).st_mtime_ns) for _, p in found]])


class TestSet(NamedTuple):
    evalset: "EvalSet"        # cached features + references of the images present  # noqa: F821
    paths: list               # their image files, in ``evalset.ids`` order
    unreadable: dict          # {path: reason} of the files skipped
    domains: list             # per image: NoCaps' domain label, or None for a set without domains


def load_test_set(clip, test: ReferenceSetConfig, feature_cfg: FeatureConfig, n: Optional[int] = None,
                  progress: bool = True, on_unreadable: str = "skip") -> TestSet:
    """Images of ``test`` that are present in its ``image_dir`` (first ``n``), their references and cached
    CLIP features -> ``TestSet(evalset, paths, unreadable, domains)``. An image that does not decode is named
    in a warning and skipped (``on_unreadable="fail"``: a ValueError naming them instead)."""
    import warnings

    from ..corpora.readers import present_items, unreadable_images
    from ..features.cache import extract_image_features
    from ..training import EvalSet
    found = [(it, p) for it, p in present_items(test.image_dir, test.captions_file, "ReferenceSetConfig")
             if it.captions]
    found = found[:n] if n else found
    bad = unreadable_images([p for _, p in found])
    if bad:
        listing = "; ".join(f"{p} ({why})" for p, why in list(bad.items())[:5])
        if on_unreadable == "fail":
            raise ValueError(f"{len(bad)} image(s) of test set {test.corpus} cannot be read: {listing}; replace or "
                             "remove them (or skip them: on_unreadable='skip').")
        warnings.warn(f"test set {test.corpus}: {len(bad)} unreadable image(s) skipped: {listing}")
        found = [(it, p) for it, p in found if p not in bad]
    ids = [it.image_id for it, _ in found]
    paths = [p for _, p in found]
    source = stable_hash([str(repo_path(test.captions_file)), [os.path.basename(p) for p in paths],
                          [os.path.getsize(p) for p in paths]])
    store = extract_image_features(clip, paths, ids, f"test-{test.corpus}-{len(ids)}-{source[:8]}", feature_cfg,
                                   source_id=source, progress=progress)
    return TestSet(EvalSet.from_store(store, [it.captions for it, _ in found]), paths, bad,
                   [it.domain for it, _ in found])


def subset_rows(evalset, hyps: list, domains: list, clip) -> list:
    """NoCaps-style scoring: for a set whose images carry domain labels, one row per domain (in NOCAPS_DOMAINS
    order) scored on that domain's images alone, as the NoCaps evaluation does (each subset its own CIDEr
    document frequencies); [] for a set without labels."""
    from ..evaluation.metrics import clip_scores, coco_metrics
    labels = [d for d in NOCAPS_DOMAINS if d in set(domains)] + sorted({d for d in domains if d} - set(NOCAPS_DOMAINS))
    rows = []
    for label in labels:
        idx = [i for i, d in enumerate(domains) if d == label]
        refs = {evalset.ids[i]: evalset.refs[i] for i in idx}
        metrics = coco_metrics(refs, {evalset.ids[i]: hyps[i] for i in idx})
        metrics.update(clip_scores(clip, evalset.global_[idx], [hyps[i] for i in idx], [evalset.refs[i] for i in idx]))
        rows.append({"subset": label, "images": len(idx), **metrics})
    return rows


def load_test_sets(clip, cfg: ProtocolConfig, feature_cfg: Optional[FeatureConfig] = None,
                   progress: bool = True) -> dict:
    """Every test set of ``cfg`` loaded once (images verified, features cached): {corpus: ``TestSet``, or the
    ``FileNotFoundError`` that says what is missing (with a warning)}. ``run_protocol`` scores any number of
    captioners on the result without reading the images again."""
    import warnings
    feature_cfg = feature_cfg or FeatureConfig()
    out = {}
    for test in cfg.test_sets:
        try:
            out[test.corpus] = load_test_set(clip, test, feature_cfg, cfg.max_images, progress, cfg.on_unreadable)
        except FileNotFoundError as e:
            warnings.warn(f"test set {test.corpus} skipped: {e}")
            out[test.corpus] = e
    return out


def run_protocol(model, vocab, clip, cfg: ProtocolConfig, feature_cfg: Optional[FeatureConfig] = None,
                 progress: bool = True, method=None, exp=None, loaded: Optional[dict] = None) -> list:
    """Caption and score every test set of ``cfg``; one row per set with its protocol, training and test
    corpus, the number of images and the metrics (plus the captions under ``hyps``). With ``method`` (a
    registered ``workbench.methods`` method and the ``exp`` it was trained on) each set is captioned through the
    method's inference recipe (projection, alignment, tags, ...). A test set whose images or references are
    missing gets a row with ``status`` saying what is missing (and a warning); the other sets are still scored.
    A set whose images carry domain labels (NoCaps) gets its overall row (``subset: "overall"``, the one with
    ``hyps``) followed by one row per domain (``subset_rows``). ``loaded``: ``load_test_sets``'s result, when the
    caller scores several captioners on the same sets (None: loaded here)."""
    loaded = loaded if loaded is not None else load_test_sets(clip, cfg, feature_cfg, progress)
    rows = []
    for test in cfg.test_sets:
        head = {"protocol": f"{cfg.domain(test.corpus)}: {cfg.train_corpus} -> {test.corpus}",
                "domain": cfg.domain(test.corpus), "train_corpus": cfg.train_corpus, "test_corpus": test.corpus}
        if isinstance(loaded[test.corpus], FileNotFoundError):
            rows.append({**head, "images": 0, "status": f"missing: {loaded[test.corpus]}"})
            continue
        evalset, paths, bad, domains = loaded[test.corpus]
        if method is not None:                              # the method's settings for this test corpus
            evalset = method.for_test_set(test.corpus, cfg.train_corpus).inference_set(exp, evalset, paths)
        metrics, hyps = evaluate_captioner(model, vocab, evalset, clip, cfg.beam)
        subsets = subset_rows(evalset, hyps, domains, clip)
        overall = {"protocol": f"{head['protocol']} (overall)", "subset": "overall"} if subsets else {}
        rows.append({**head, **overall, "images": len(evalset.ids),
                     "status": "scored", **metrics, "references": sum(len(r) for r in evalset.refs),
                     "images_unreadable": len(bad), "unreadable": sorted(bad)[:20],
                     "hyps": dict(zip(evalset.ids, hyps))})
        rows.extend({**head, "protocol": f"{head['protocol']} ({sub['subset']})", "status": "scored", **sub}
                    for sub in subsets)
    return rows
