"""The package's shape: folders by role that import one way only, and one statement each of the facts that used to
live in several places (the real-data layout, CLIPScore's formula, the markdown table writer)."""
import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "workbench"
ORDER = ("config", "utils", "sandbox", "features", "corpora", "backbones", "model", "evaluation", "synthesis",
         "training", "viz", "methods", "experiments", "cli")      # a folder imports only folders before it


def _sources():
    return {p: p.read_text() for p in PKG.rglob("*.py")}


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _imports(path: Path, src: str):
    """(module this file is, every workbench module it imports, lazily or not)."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
    pkg = parts if rel.name == "__init__" else parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("workbench"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names if target == "workbench")
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("workbench"))
    return ".".join(parts), out


def test_top_level_holds_folders_and_the_two_shared_entry_modules():
    top = sorted(p.stem for p in PKG.glob("*.py"))
    assert top == ["__init__", "cli", "training"], top        # nothing sandbox-only or method-private at the top
    assert {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(ORDER) - {
        "training", "cli"}


def test_folders_import_downward_only():
    bad = []
    for path, src in _sources().items():
        me, targets = _imports(path, src)
        for t in targets:
            a, b = _part(me), _part(t)
            if a and b and a != b and b in ORDER and ORDER.index(b) > ORDER.index(a):
                bad.append(f"{me} -> {t}")
    assert not bad, "imports that run back up the pipeline:\n" + "\n".join(sorted(bad))


def test_the_real_data_layout_is_stated_once():
    layout = PKG / "config" / "layout.py"
    hits = [f"{p.relative_to(PKG)}:{src[:m.start()].count(chr(10)) + 1}" for p, src in _sources().items()
            if p != layout for m in re.finditer(r"[\"']data/(mscoco|flickr30k|nocaps)/", src)]
    assert not hits, f"a real-data path outside config/layout.py: {hits}"


def test_clipscore_and_the_table_writer_are_stated_once():
    formula = re.compile(r"\b2\.5\s*\*|\*\s*2\.5\b")
    rule = re.compile(r"[\"']\|---")
    for p, src in _sources().items():
        name = str(p.relative_to(PKG))
        if name != "evaluation/clipscore.py":
            assert not formula.search(src), f"{name} restates CLIPScore's formula; use evaluation.clipscore"
        if name != "utils/tables.py":
            assert not rule.search(src), f"{name} writes a markdown table by hand; use utils.tables.markdown_table"


def test_the_guards_can_fail(tmp_path):
    """The scans above see what they look for: an upward import and a hand-written table are caught."""
    src = "from ..experiments import runner\nx = '|---|'\n"
    me, targets = _imports(PKG / "model" / "fake.py", src)
    assert me == "workbench.model.fake" and "workbench.experiments" in targets
    assert re.search(r"[\"']\|---", src)


def test_markdown_table_refuses_a_short_row():
    import pytest

    from workbench.utils.tables import markdown_table
    assert markdown_table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        markdown_table(["a", "b"], [[1]])


def test_clipscore_formula_on_floats_arrays_and_tensors():
    import numpy as np
    import torch

    from workbench.evaluation.clipscore import clipscore, refclipscore
    assert clipscore(0.4) == 1.0 and clipscore(-0.2) == 0.0
    assert np.allclose(clipscore(np.array([0.2, -1.0])), [0.5, 0.0])
    assert torch.allclose(clipscore(torch.tensor([0.2, -1.0])), torch.tensor([0.5, 0.0]))
    assert abs(refclipscore(1.0, 0.5) - 2 / 3) < 1e-9 and refclipscore(0.0, 0.0) == 0.0
