"""The ``workbench`` console script: subcommands, their help, one-line errors, and ``workbench score``."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import cli
from workbench.evaluation.score import load_predictions, score_file

FIX = Path(__file__).parent / "fixtures"
REFS = FIX / "karpathy_mscoco_val_sample.json"


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_console_script_is_declared_and_lists_the_subcommands():
    assert 'workbench = "workbench.cli:main"' in (Path(__file__).parents[1] / "pyproject.toml").read_text()
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("run", "leaderboard", "pipeline", "prepare", "synthesize", "calibrate", "caption", "score"):
        assert f"  {name} " in out.stdout


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_subcommand_has_help_with_an_example(name, capsys):
    code, out, _ = _run([name, "--help"], capsys)
    assert code == 0 and f"workbench {name}" in out and cli.COMMANDS[name].example in out


def test_profile_is_translated_and_defaults_added():
    lb = cli.COMMANDS["leaderboard"]
    assert cli.translate(lb, ["--profile", "sandbox"]) == ["--preset", "sandbox", "--methods", "all"]
    assert cli.translate(lb, ["--methods=capdec"]) == ["--methods=capdec"]
    assert cli.translate(cli.COMMANDS["pipeline"], ["--profile", "paper_b32"]) == ["--profile", "paper_b32"]


def test_bad_input_ends_in_one_line_without_traceback(capsys, tmp_path):
    code, _, err = _run(["score", str(tmp_path / "none.json"), "--refs", str(REFS)], capsys)
    assert code == 2 and err.count("\n") == 1 and "none.json" in err and "Traceback" not in err
    code, _, err = _run(["frobnicate"], capsys)
    assert code == 2 and "unknown command 'frobnicate'" in err
    with pytest.raises(FileNotFoundError):
        cli.main(["score", str(tmp_path / "none.json"), "--refs", str(REFS), "--debug"])


def test_score_matches_ids_counts_missing_and_extra(tmp_path, capsys):
    refs = json.loads(REFS.read_text())
    ids = [int(r["image_name"].rsplit("_", 1)[1].split(".")[0]) for r in refs]
    coco = [{"image_id": ids[0], "caption": refs[0]["captions"][0]},
            {"image_id": ids[1], "caption": "a photo of something"},
            {"image_id": 999999999, "caption": "an extra image"}]
    a = tmp_path / "coco_results.json"
    a.write_text(json.dumps(coco))
    named = [{"image_name": refs[0]["image_name"], "prediction": refs[0]["captions"][0]},
             {"image_name": refs[1]["image_name"], "prediction": "a photo of something"}]
    b = tmp_path / "named.json"
    b.write_text(json.dumps(named))
    ra, rb = score_file(a, REFS), score_file(b, REFS)
    assert ra["counts"]["matched"] == 2 and ra["counts"]["extra"] == 1
    assert ra["counts"]["missing"] == len(refs) - 2 and rb["counts"]["extra"] == 0
    assert ra["metrics"]["CIDEr"] == pytest.approx(rb["metrics"]["CIDEr"]) and ra["metrics"]["CIDEr"] > 0
    capsys.readouterr()
    cli.main(["score", str(a), "--refs", str(REFS)])                    # returns normally: exit status 0
    out = capsys.readouterr().out
    assert "| matched | missing | extra |" in out and "extra (captions without references)" in out


def test_score_refuses_duplicates_and_unmatched(tmp_path):
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps([{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}]))
    with pytest.raises(ValueError, match="two captions"):
        load_predictions(dup)
    none = tmp_path / "none.json"
    none.write_text(json.dumps([{"image_id": 123, "caption": "a"}]))
    with pytest.raises(ValueError, match="no image of"):
        score_file(none, REFS)
