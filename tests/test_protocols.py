"""In-domain / cross-domain evaluation on real test sets in both reference formats (fixtures)."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from workbench.model.captioner import Captioner
from workbench.config import CaptionerConfig, FeatureConfig, PCMConfig, ProtocolConfig, ReferenceSetConfig
from workbench.corpora.readers import load_captions
from workbench.evaluation.metrics import coco_metrics
from workbench.experiments.protocols import load_test_set, run_protocol
from workbench.model.vocab import Vocabulary

FIX = Path(__file__).parent / "fixtures"
KARPATHY = ReferenceSetConfig("mscoco", str(FIX / "coco_images"), str(FIX / "karpathy_mscoco_val_sample.json"))
COCO_JSON = ReferenceSetConfig("coco2017", str(FIX / "coco_images"), str(FIX / "coco_captions_sample.json"))


@pytest.fixture()
def model_vocab(tiny_clip):
    vocab = Vocabulary.build(["a man riding a horse", "a plate of food on a table"], min_count=1)
    bank = F.normalize(tiny_clip.text_features(["man", "horse", "plate", "food"]), dim=-1)
    grid = tiny_clip.model.visual.grid_size[0] ** 2
    torch.manual_seed(0)
    model = Captioner(CaptionerConfig.preset("tiny"), len(vocab), tiny_clip.embed_dim,
                      tiny_clip.model.visual.transformer.width, grid, PCMConfig.preset("tiny", k=2), bank)
    return model.eval(), vocab


def test_test_set_pairs_each_present_image_with_its_references(tiny_clip, tmp_path):
    feat = FeatureConfig.preset("tiny", root=str(tmp_path / "features"))
    evalset, paths, *_ = load_test_set(tiny_clip, KARPATHY, feat, progress=False)
    refs = {it.image_id: it.captions for it in load_captions(KARPATHY.captions_file)}
    assert evalset.ids == [244592, 10440, 10012]                    # the 3 of 5 items whose image is here
    assert [Path(p).name for p in paths] == [f"{i:012d}.jpg" for i in evalset.ids]
    assert evalset.refs == [refs[i] for i in evalset.ids]
    direct = tiny_clip.image_features(paths).global_
    assert torch.allclose(evalset.global_.float(), direct.float(), atol=2e-2)   # fp16 cache, same order
    assert load_test_set(tiny_clip, KARPATHY, feat, n=2, progress=False)[0].ids == [244592, 10440]


def test_protocol_rows_label_domains_and_reproduce_the_metrics(tiny_clip, model_vocab, tmp_path):
    model, vocab = model_vocab
    cfg = ProtocolConfig(train_corpus="mscoco", test_sets=(KARPATHY, COCO_JSON), beam=2)
    rows = run_protocol(model, vocab, tiny_clip, cfg, FeatureConfig.preset("tiny", root=str(tmp_path)),
                        progress=False)
    assert [r["domain"] for r in rows] == ["in-domain", "cross-domain"]
    assert rows[1]["protocol"] == "cross-domain: mscoco -> coco2017"
    assert [r["images"] for r in rows] == [3, 1]                     # COCO json: 397133 has no image here
    refs = {it.image_id: it.captions for it in load_captions(COCO_JSON.captions_file)}
    direct = coco_metrics({i: refs[i] for i in rows[1]["hyps"]}, rows[1]["hyps"])
    assert rows[1]["CIDEr"] == direct["CIDEr"] and rows[1]["Bleu_1"] == direct["Bleu_1"]
    assert 0.0 <= rows[0]["CLIPScore"] <= 2.5


def test_protocol_errors_name_the_argument(tiny_clip, tmp_path):
    feat = FeatureConfig.preset("tiny", root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="image_dir="):
        load_test_set(tiny_clip, ReferenceSetConfig("x", str(tmp_path / "nope"), KARPATHY.captions_file), feat)
    with pytest.raises(FileNotFoundError, match="captions_file="):
        load_test_set(tiny_clip, ReferenceSetConfig("x", str(tmp_path), KARPATHY.captions_file), feat)
    with pytest.raises(ValueError, match="test_sets"):
        ProtocolConfig(test_sets=())
    assert ProtocolConfig.preset("paper_flickr30k").domain("mscoco") == "cross-domain"


def test_a_missing_test_set_keeps_the_finished_ones(tiny_clip, model_vocab, tmp_path):
    model, vocab = model_vocab
    gone = ReferenceSetConfig("flickr30k", str(tmp_path / "no-images"), KARPATHY.captions_file)
    cfg = ProtocolConfig(train_corpus="mscoco", test_sets=(KARPATHY, gone), beam=1)
    with pytest.warns(UserWarning, match="flickr30k skipped"):
        rows = run_protocol(model, vocab, tiny_clip, cfg, FeatureConfig.preset("tiny", root=str(tmp_path)),
                            progress=False)
    assert rows[0]["status"] == "scored" and rows[0]["images"] == 3 and "CIDEr" in rows[0]
    assert rows[1]["status"].startswith("missing: image_dir=") and rows[1]["images"] == 0


def test_an_unreadable_test_image_is_skipped_by_default_or_fails_when_asked(tiny_clip, tmp_path):
    import shutil
    shutil.copytree(FIX / "coco_images", tmp_path / "imgs")
    broken = sorted((tmp_path / "imgs").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:1200])
    ref = ReferenceSetConfig("mscoco", str(tmp_path / "imgs"), KARPATHY.captions_file)
    feat = FeatureConfig.preset("tiny", root=str(tmp_path / "features"))
    with pytest.warns(UserWarning, match=broken.name):
        evalset, paths, bad, _ = load_test_set(tiny_clip, ref, feat, progress=False)
    assert list(bad) == [str(broken)] and str(broken) not in paths and len(evalset.ids) == len(paths)
    with pytest.raises(ValueError, match=broken.name):
        load_test_set(tiny_clip, ref, feat, progress=False, on_unreadable="fail")
    with pytest.raises(ValueError, match="on_unreadable"):
        ProtocolConfig(on_unreadable="ignore")
