"""``workbench``: one command-line entry point for everything a user runs.

    workbench --help                     # the subcommands
    workbench run                        # every notebook on the sandbox (the main job)
    workbench leaderboard --seeds 0      # every registered method on the sandbox
    workbench score captions.json --refs mscoco_test.json

Each subcommand is the ``main`` of one module (``python -m workbench.<module>`` still works); the same flag
names mean the same thing everywhere (``--profile`` is also accepted where a module calls it ``--preset``).
A bad argument or input ends in one line naming it and the fix, exit status 2, no traceback; ``--debug``
shows the traceback.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str
    help: str
    example: str
    preset_flag: bool = False        # the module's flag is --preset: --profile is translated
    defaults: tuple = ()             # arguments added when the user gives none of their flags


COMMANDS = {
    "run": Command("experiments.notebooks", "run every notebook top to bottom (the main job; quick scale unless --full)",
                   "workbench run --only 01 02"),
    "leaderboard": Command("experiments.runner", "every registered method x seeds on the sandbox, one table",
                           "workbench leaderboard --seeds 0 --jobs 2", True, (("--methods", "all"),)),
    "ablation": Command("experiments.runner", "PCM-Net's ablation (or any --methods) on the sandbox",
                        "workbench ablation --methods pcm-net,capdec --seeds 0 1 2", True),
    "pipeline": Command("experiments.pipeline", "real data: captions -> synthesis -> features -> training -> tables",
                        "workbench pipeline --profile paper_b32 --train mscoco --test mscoco flickr30k"),
    "prepare": Command("corpora.prepare", "download / check the real data layout (MSCOCO, Flickr30k)",
                       "workbench prepare --profile paper_b32 --corpus mscoco --offline"),
    "synthesize": Command("synthesis.engine", "synthesise one image per caption with a diffusers pipeline",
                          "workbench synthesize --profile sandbox --split train --n 200", True),
    "calibrate": Command("experiments.calibrate", "calibrate the sandbox: --world (caption world, CLIP) or the synthesis",
                         "workbench calibrate --world"),
    "caption": Command("model.saved", "caption a folder of images with a saved captioner",
                       "workbench caption runs/pipeline/paper_b32-mscoco/captioner my_photos/ --out caps.json"),
    "score": Command("evaluation.score", "score a caption file against Karpathy / COCO references",
                     "workbench score captions.json --refs data/mscoco/karpathy/mscoco_test.json"),
    "select": Command("experiments.selection", "re-select the papers' val-chosen settings on the sandbox",
                      "workbench select --sweep noise --jobs 2"),
    "pretrain-clip": Command("backbones.sandbox_clip", "pretrain the sandbox CLIP (resumable)", "workbench pretrain-clip --profile sandbox",
                             True),
    "train-sd": Command("backbones.sandbox_sd", "train the sandbox text-to-image model (resumable)",
                        "workbench train-sd --profile sandbox", True),
}
ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, KeyError)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: workbench <command> [options]   (workbench <command> --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {c.help}" for name, c in COMMANDS.items()]
    lines += ["", "options for every command:", "  --debug   show the Python traceback of an error", "",
              "examples:"] + [f"  {c.example}" for c in list(COMMANDS.values())[:4]]
    return "\n".join(lines)


def translate(cmd: Command, args: list) -> list:
    """The module's own argv: ``--profile`` -> ``--preset`` where the module says preset; defaults added."""
    out = list(args)
    if cmd.preset_flag:
        out = ["--preset" if a == "--profile" else ("--preset=" + a.split("=", 1)[1] if a.startswith("--profile=")
                                                     else a) for a in out]
    for flag, value in cmd.defaults:
        if not any(a == flag or a.startswith(flag + "=") for a in out):
            out += [flag, value]
    return out


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"workbench: unknown command {name!r}; choose one of {', '.join(COMMANDS)} (workbench --help).",
              file=sys.stderr)
        sys.exit(2)
    cmd = COMMANDS[name]
    module = importlib.import_module(f"workbench.{cmd.module}")
    old_prog = sys.argv[0]
    sys.argv[0] = f"workbench {name}"                     # argparse's usage line names the subcommand
    try:
        module.main(translate(cmd, rest))
    except SystemExit as e:
        if any(a in ("-h", "--help") for a in rest) and not e.code:
            print(f"\nexample:\n  {cmd.example}")
        raise
    except ERRORS as e:
        if debug or os.environ.get("WORKBENCH_DEBUG"):
            raise
        msg = str(e).strip() or type(e).__name__           # one line, or the pre-flight's list of problems
        print(f"workbench {name}: error: {msg}  (--debug shows the traceback)", file=sys.stderr)
        sys.exit(2)
    finally:
        sys.argv[0] = old_prog


if __name__ == "__main__":
    main()
