"""The pipeline on a prepared tiny layout (see test_pipeline.py), run as a script under torch.distributed.run.

    python tests/pipeline_job.py <layout root> <out_dir>
"""
import json
import sys
from dataclasses import replace
from pathlib import Path

from workbench.config import PipelineConfig, ReferenceSetConfig


def config(root: Path, **over) -> PipelineConfig:
    """The tiny paper-path config on the layout under ``root`` (data/ replaced by root)."""
    def at(ref):
        return ReferenceSetConfig(ref.corpus, str(root / ref.image_dir[len("data/"):]),
                                  str(root / ref.captions_file[len("data/"):]))
    cfg = PipelineConfig.for_corpora("tiny", "mscoco", ("mscoco", "flickr30k"))
    return replace(cfg, **{"train_captions": str(root / "mscoco/karpathy/dataset_coco.json"), "val": at(cfg.val),
                           "test_sets": tuple(at(t) for t in cfg.test_sets), "vocab_min_count": 1, "n_val": 3,
                           "beam": 2, "clip_pretrained": str(root / "clip.safetensors"),
                           "synthesis_model": str(root / "sd"), "out_dir": str(root / "out"), **over})


if __name__ == "__main__":
    from accelerate import PartialState

    from workbench.experiments.pipeline import Pipeline
    root, out = Path(sys.argv[1]), sys.argv[2]
    rows = Pipeline(config(root, out_dir=out), progress=False).run()
    rank = PartialState().process_index
    Path(out, f"rank{rank}.json").write_text(json.dumps({"rows": len(rows)}))
