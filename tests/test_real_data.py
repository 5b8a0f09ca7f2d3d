"""Real data: the Karpathy dataset_*.json reader, format errors, caption corpora for synthesis, the data
layout of ``workbench.corpora.prepare`` (counts, offline message, resumable checksummed download on localhost) and
the CLIP that scores synthetic pairs (the profile's, recorded in the manifest)."""
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from workbench.corpora.readers import (caption_file_counts, find_image, format_counts, image_counts,
                                       load_caption_corpus, load_captions)

FIX = Path(__file__).parent / "fixtures"
COCO_DS = FIX / "karpathy_dataset_coco_sample.json"
FLICKR_DS = FIX / "karpathy_dataset_flickr30k_sample.json"
VAL_IDS = (244592, 10440, 10012)                 # Karpathy val images with a photo in fixtures/coco_images


# ----------------------------------------------------------------------------- readers
def test_karpathy_dataset_reader_and_splits():
    train = load_captions(COCO_DS, splits=("train", "restval"))
    assert [it.split for it in train] == ["train"] * 3 + ["restval"] * 2
    assert train[0].folder == "train2014" and train[0].file_name == f"COCO_train2014_{train[0].image_id:012d}.jpg"
    test = load_captions(COCO_DS, splits="test")
    assert len(test) == 3 and test[0].image_id == 391895 and isinstance(test[0].image_id, int)
    assert test[0].captions[0] == "A man with a red helmet on a small moped on a dirt road."
    assert [len(it.captions) for it in test] == [5, 5, 6]
    assert len(load_captions(COCO_DS)) == 12                          # splits=None: every image
    flickr = load_captions(FLICKR_DS, splits="test")
    assert [it.image_id for it in flickr][0] == "1007129816" and flickr[0].folder == ""
    assert load_captions(FLICKR_DS, splits="val")[0].split == "val"


def test_coco_format_with_info_and_licenses(tmp_path):
    blob = {"info": {"year": 2017}, "licenses": [{"id": 1}], "type": "captions",
            "images": [{"id": 42, "file_name": "000000000042.jpg"}],
            "annotations": [{"image_id": 42, "id": 1, "caption": " A dog. "}, {"image_id": 42, "id": 2, "caption": "A cat."}]}
    (tmp_path / "c.json").write_text(json.dumps(blob))
    items = load_captions(tmp_path / "c.json")
    assert len(items) == 1 and items[0].captions == ["A dog.", "A cat."]
    with pytest.raises(ValueError, match="COCO-format, which has no Karpathy splits"):
        load_captions(tmp_path / "c.json", splits="test")


def test_format_errors_name_the_file_what_was_found_and_the_formats(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"foo": 1, "bar": []}))
    with pytest.raises(ValueError) as err:
        load_captions(bad)
    msg = str(err.value)
    assert str(bad) in msg and "['bar', 'foo']" in msg and "dataset_coco.json" in msg and "annotations" in msg
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="a list of 2 items"):
        load_captions(bad)
    with pytest.raises(ValueError, match="splits=.*'testing'"):
        load_captions(COCO_DS, splits="testing")
    with pytest.raises(ValueError, match="no image of .* is in splits"):
        load_captions(FLICKR_DS, splits="train")


def test_empty_captions_are_refused_with_the_image_named(tmp_path):
    blob = json.loads(COCO_DS.read_text())
    test = next(im for im in blob["images"] if im["cocoid"] == 391895)
    test["sentences"][3]["raw"] = "  "
    (tmp_path / "d.json").write_text(json.dumps(blob))
    with pytest.raises(ValueError, match=r"caption 3 of image 391895 in .*d\.json is empty"):
        load_captions(tmp_path / "d.json")
    test["sentences"] = []
    (tmp_path / "d.json").write_text(json.dumps(blob))
    with pytest.raises(ValueError, match="image 391895 in .* has no captions"):
        load_captions(tmp_path / "d.json")
    lst = [{"split": "val", "image_name": "COCO_val2014_000000000007.jpg", "captions": ["a", ""]}]
    (tmp_path / "l.json").write_text(json.dumps(lst))
    with pytest.raises(ValueError, match="caption 1 of image 7 in"):
        load_captions(tmp_path / "l.json")


def _coco_root(tmp_path) -> Path:
    """``<root>/val2014/COCO_val2014_%012d.jpg``: the fixture photos under their Karpathy names."""
    (tmp_path / "val2014").mkdir(parents=True)
    for i in VAL_IDS:
        shutil.copy(FIX / "coco_images" / f"{i:012d}.jpg", tmp_path / "val2014" / f"COCO_val2014_{i:012d}.jpg")
    return tmp_path


def test_find_image_under_the_karpathy_filepath_and_counts(tmp_path):
    root = _coco_root(tmp_path / "mscoco")
    val = load_captions(COCO_DS, splits="val")
    assert find_image(root, val[0]) == str(root / "val2014" / val[0].file_name)      # <root>/<filepath>/<filename>
    assert find_image(root / "val2014", val[0]) == str(root / "val2014" / val[0].file_name)
    counts = image_counts(val, root)
    assert counts == {"captions": 20, "images": 4, "images_present": 3, "images_missing": 1}
    assert caption_file_counts(COCO_DS, root, "test")["images_missing"] == 3
    assert caption_file_counts(COCO_DS, tmp_path / "nowhere", "val")["images_present"] == 0
    assert format_counts(counts, "val") == "val: 20 captions, 4 images listed, 3 present, 1 missing"


# ----------------------------------------------------------------------------- caption corpora (synthesis input)
def test_caption_corpus_formats(tmp_path):
    (tmp_path / "c.txt").write_text("a dog on a sofa\n  two cats  \n\n")
    assert load_caption_corpus(tmp_path / "c.txt") == (["a dog on a sofa", "two cats"], ["0", "1"])
    (tmp_path / "s.json").write_text(json.dumps(["a", "b"]))
    assert load_caption_corpus(tmp_path / "s.json") == (["a", "b"], ["0", "1"])
    (tmp_path / "d.json").write_text(json.dumps([{"id": "x7", "caption": "a boat"}]))
    assert load_caption_corpus(tmp_path / "d.json") == (["a boat"], ["x7"])
    caps, ids = load_caption_corpus(FIX / "coco_captions_sample.json")          # COCO json with an "info" key
    assert len(caps) == 10 and "info" not in caps and ids[0].endswith("#0")
    caps, ids = load_caption_corpus(COCO_DS)                                     # default: train + restval
    assert len(caps) == 25 and len(set(ids)) == 25
    caps, ids = load_caption_corpus(COCO_DS, ["test"])
    assert ids[:2] == ["391895#0", "391895#1"] and len(caps) == 16
    assert len(load_caption_corpus(FIX / "karpathy_mscoco_val_sample.json")[0]) == 25


def test_caption_corpus_errors(tmp_path):
    for name, text, match in (("e.txt", "a\n\nb\n", r"empty line\(s\) \[1\]"), ("n.json", "{not json", "neither a .txt"),
                              ("o.json", json.dumps({"captions": ["a"]}), r"found a dict with keys \['captions'\]"),
                              ("m.json", json.dumps(["a", {"text": "b"}]), "item 1 of"),
                              ("z.json", json.dumps(["a", " "]), "caption 1 .* is empty")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=match) as err:
            load_caption_corpus(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    (tmp_path / "s.json").write_text(json.dumps(["a"]))
    with pytest.raises(ValueError, match="Karpathy files only"):
        load_caption_corpus(tmp_path / "s.json", ["test"])


# ----------------------------------------------------------------------------- prepare: layout, offline, download
def _layout(root: Path) -> Path:
    _coco_root(root / "mscoco")
    (root / "mscoco" / "karpathy").mkdir()
    shutil.copy(COCO_DS, root / "mscoco" / "karpathy" / "dataset_coco.json")
    (root / "flickr30k" / "karpathy").mkdir(parents=True)
    (root / "flickr30k" / "images").mkdir()
    shutil.copy(FLICKR_DS, root / "flickr30k" / "karpathy" / "dataset_flickr30k.json")
    photos = sorted((FIX / "coco_images").iterdir())
    for it, photo in zip(load_captions(FLICKR_DS, splits="test")[:2], photos):
        shutil.copy(photo, root / "flickr30k" / "images" / it.file_name)        # real photos: prepare decodes them
    return root


def test_offline_message_lists_the_missing_paths(tmp_path, capsys):
    from workbench.corpora.prepare import prepare
    report = prepare(tmp_path / "data", offline=True, progress=False)
    out = capsys.readouterr().out
    root = tmp_path / "data"
    for path in (root / "mscoco" / "train2014", root / "mscoco" / "val2014", root / "flickr30k" / "images"):
        assert f"MISSING {path}/" in out and str(path) + "/" in report["missing"]
    for path in (root / "mscoco" / "karpathy" / "dataset_coco.json",
                 root / "flickr30k" / "karpathy" / "dataset_flickr30k.json"):
        assert f"MISSING {path}" in out
    assert "http://images.cocodataset.org/zips/val2014.zip" in out and "caption_datasets.zip" in out
    assert "request the Flickr30k images" in out


def test_layout_counts_from_fixtures(tmp_path, capsys):
    from workbench.corpora.prepare import prepare
    root = _layout(tmp_path / "data")
    report = prepare(root, offline=True, progress=False, train_images=False)
    coco, flickr = report["mscoco"], report["flickr30k"]
    assert coco["folders"]["val2014"] == (3, 40504)
    ok = {"images_unreadable": 0, "unreadable": []}                 # val / test images are decoded, not only found
    assert coco["splits"]["val"] == {"captions": 20, "images": 4, "images_present": 3, "images_missing": 1, **ok}
    assert coco["splits"]["test"] == {"captions": 16, "images": 3, "images_present": 0, "images_missing": 3, **ok}
    assert coco["splits"]["train"]["images_missing"] == 3 and coco["splits"]["restval"]["images"] == 2
    assert flickr["splits"]["test"] == {"captions": 15, "images": 3, "images_present": 2, "images_missing": 1, **ok}
    assert report["missing"] == []                                  # train2014 not needed (train_images=False)
    assert json.loads((root / "mscoco" / "counts.json").read_text())["val"]["images_present"] == 3
    # the per-split Karpathy lists the RealDataConfig / ProtocolConfig presets point at
    val = load_captions(root / "mscoco" / "karpathy" / "mscoco_val.json")
    assert [it.image_id for it in val] == [it.image_id for it in load_captions(COCO_DS, splits="val")]
    assert image_counts(val, root / "mscoco" / "val2014")["images_present"] == 3
    assert {it.split for it in load_captions(root / "mscoco" / "karpathy" / "mscoco_train.json")} == {"train", "restval"}
    assert len(load_captions(root / "flickr30k" / "karpathy" / "flickr30k_test.json")) == 3
    assert "val: 20 captions, 4 images listed, 3 present, 1 missing" in capsys.readouterr().out
    # --root: the configured caption files are counted under the root, not under the repository's data/
    assert all(str(root) in label and cnt is not None for label, cnt in report["configs"].items()), report["configs"]
    # a truncated photo is counted unreadable and named, not present
    photo = next((root / "mscoco" / "val2014").iterdir())
    photo.write_bytes(photo.read_bytes()[:1500])
    again = prepare(root, offline=True, progress=False, train_images=False)["mscoco"]["splits"]["val"]
    assert (again["images_present"], again["images_unreadable"]) == (2, 1) and again["unreadable"] == [str(photo)]


class _Server:
    """A localhost HTTP server of one payload that honours Range; ``cut`` truncates the first response."""

    def __init__(self, data: bytes, honour_range: bool = True, cut: int = 0):
        self.data, self.ranges, self.cut = data, [], cut
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                server.ranges.append(rng)
                start = int(rng[len("bytes="):-1]) if rng and honour_range else 0
                body = server.data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.data) - 1}/{len(server.data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut:
                    body, server.cut = body[:server.cut], 0          # drop the connection mid-body, once
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_resumes_a_partial_file_and_checks_sha256(tmp_path):
    import hashlib
    from workbench.corpora.prepare import download
    data = bytes(range(256)) * 800                                    # 200 KB
    sha = hashlib.sha256(data).hexdigest()
    srv = _Server(data, cut=50_000)
    try:
        dest = tmp_path / "dl" / "file.zip"
        with pytest.raises(OSError, match="rerun to resume"):
            download(srv.url, dest, sha, progress=False)             # the connection drops after 50 KB
        assert not dest.exists() and (tmp_path / "dl" / "file.zip.part").stat().st_size == 50_000
        rec = download(srv.url, dest, sha, progress=False)
        assert srv.ranges == [None, "bytes=50000-"]                   # the second request resumed
        assert dest.read_bytes() == data and rec["sha256"] == sha and rec["size"] == len(data)
        assert not (tmp_path / "dl" / "file.zip.part").exists()
        assert download(srv.url, dest, sha, progress=False) == rec and len(srv.ranges) == 2   # done: no request
        with pytest.raises(ValueError, match="expected 0000"):
            download(srv.url, tmp_path / "other.zip", "0" * 64, progress=False)
        assert not (tmp_path / "other.zip").exists() and not (tmp_path / "other.zip.part").exists()
    finally:
        srv.close()


def test_download_restarts_when_the_server_ignores_range(tmp_path):
    from workbench.corpora.prepare import download
    data = b"x" * 10_000 + b"y" * 10_000
    srv = _Server(data, honour_range=False)
    try:
        (tmp_path / "f.zip.part").write_bytes(b"garbage")
        rec = download(srv.url, tmp_path / "f.zip", progress=False)
        assert (tmp_path / "f.zip").read_bytes() == data and rec["size"] == len(data)
    finally:
        srv.close()


def test_fetch_records_the_download_and_extracts_atomically(tmp_path):
    import zipfile
    from workbench.corpora.prepare import extract_folder, extract_member, fetch
    zpath = tmp_path / "src.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("val2014/COCO_val2014_000000000001.jpg", b"a")
        zf.writestr("dataset_coco.json", COCO_DS.read_text())
    srv = _Server(zpath.read_bytes())
    try:
        got = fetch(tmp_path / "data", "val2014", srv.url, progress=False)
    finally:
        srv.close()
    rec = json.loads((tmp_path / "data" / "downloads" / "downloads.json").read_text())["val2014"]
    assert rec["url"] == srv.url and rec["size"] == zpath.stat().st_size and len(rec["sha256"]) == 64
    target = extract_folder(got, "val2014", tmp_path / "data" / "mscoco" / "val2014", progress=False)
    assert [p.name for p in target.iterdir()] == ["COCO_val2014_000000000001.jpg"]
    assert not any(p.name.endswith(".extracting") for p in target.parent.iterdir())
    js = extract_member(got, "dataset_coco.json", tmp_path / "data" / "mscoco" / "karpathy" / "dataset_coco.json")
    assert len(load_captions(js)) == 12


# ----------------------------------------------------------------------------- the scorer of synthetic pairs
def test_every_synthesis_preset_is_scored_by_its_profiles_clip():
    from workbench.config import ClipConfig, SynthesisConfig
    assert SynthesisConfig.preset("paper_fast").clip_profile == "paper_b32"          # SD-Turbo, ViT-B/32
    assert SynthesisConfig.preset("paper_b32").clip_profile == "paper_b32"
    assert SynthesisConfig.preset("paper_l14").clip_profile == "paper_l14"
    assert SynthesisConfig.preset("paper_l14").settings() == SynthesisConfig.preset("paper_b32").settings()
    assert SynthesisConfig.preset("sandbox").clip_profile == "sandbox"
    assert SynthesisConfig.preset("tiny").clip_profile == "tiny"
    for name in SynthesisConfig.presets():
        ClipConfig.preset(SynthesisConfig.preset(name).clip_profile)
    with pytest.raises(ValueError, match="clip_profile='paper_b16' is not one of"):
        SynthesisConfig.preset("tiny", clip_profile="paper_b16")


def test_cli_scores_with_the_profile_clip_and_names_it(tiny_pipeline_dir, tmp_path, capsys):
    from workbench.synthesis.engine import main, read_manifest
    out = tmp_path / "syn"
    main(["--preset", "tiny", "--model", str(tiny_pipeline_dir), "--out", str(out), "--captions", str(COCO_DS),
          "--splits", "restval"])
    recs = read_manifest(out)
    assert len(recs) == 10 and recs[0]["caption_id"].endswith("#0")
    settings = json.loads((out / "settings.json").read_text())
    assert settings["scorer"]["clip_profile"] == "tiny" and settings["scorer"]["model_name"] == "wb-tiny-vit"
    assert all(r["scorer"].startswith("tiny/wb-tiny-vit/") for r in recs)
    assert "scored by tiny/wb-tiny-vit/" in capsys.readouterr().out
    with pytest.raises(ValueError, match="clip_profile='nope'"):
        main(["--preset", "tiny", "--captions", str(COCO_DS), "--clip-profile", "nope"])


def test_another_scorer_rescores_instead_of_mixing(tiny_pipeline_dir, tiny_clip, tmp_path):
    import torch
    from workbench.backbones.clip import load_clip
    from workbench.config import ClipConfig, SynthesisConfig
    from workbench.synthesis.engine import SynthesisEngine, load_images, load_pipeline
    from workbench.backbones.zeroshot import pair_cosines
    caps = [f"a red circle number {i}" for i in range(6)]
    cfg = SynthesisConfig.preset("tiny", model_id=str(tiny_pipeline_dir), out_dir=str(tmp_path / "syn"))
    pipe = load_pipeline(cfg, device="cpu")
    first = SynthesisEngine(pipe, cfg, tiny_clip).run(caps, progress=False)
    torch.manual_seed(1)
    other = load_clip(ClipConfig.preset("tiny"), device="cpu")                  # same profile, other weights
    engine = SynthesisEngine(pipe, cfg, other)
    assert engine.scorer_id != first[0]["scorer"]
    second = engine.run(caps, progress=False)
    assert [r["sha256"] for r in second] == [r["sha256"] for r in first]         # images kept, not regenerated
    assert {r["scorer"] for r in second} == {engine.scorer_id}
    direct = pair_cosines(other, load_images(cfg.out_dir, second), caps)
    assert [r["clip_cos"] for r in second] == pytest.approx([float(c) for c in direct], abs=1e-5)
    assert json.loads((tmp_path / "syn" / "settings.json").read_text())["scorer"]["weights"] == engine.scorer_info["weights"]
    assert SynthesisEngine(pipe, cfg, other).run(caps, progress=False) == second  # same scorer: nothing redone
