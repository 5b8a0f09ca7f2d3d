"""Widgets draw safely on any kernel thread.

JupyterLab 4.6 sends widget messages to kernel subshells (other threads under ipykernel 7), and the inline
backend's ``flush_figures`` runs after comm messages: it displays and closes every figure in pyplot's
global list, including one a widget callback is still drawing (jupyterlab/jupyterlab#19719). These tests
reproduce that race: a flush loop on one thread while the inspector redraws on another."""
import threading
import time
from dataclasses import replace

import pytest
import torch

from workbench.viz import widgets
from workbench.features.concepts import ConceptBank
from workbench.config import FeatureConfig, PCMConfig, WorldConfig
from workbench.sandbox.splits import load_sandbox_split
from workbench.features.cache import extract_image_features


@pytest.fixture(scope="module")
def inspector_inputs(tiny_clip, tmp_path_factory):
    d = load_sandbox_split(WorldConfig.preset("tiny"), "test", n=6)
    cfg = replace(FeatureConfig.preset("tiny"), root=str(tmp_path_factory.mktemp("feat")))
    store = extract_image_features(tiny_clip, d.images, [s.scene_id for s in d.scenes], "w", cfg, progress=False)
    words = ["circle", "star", "heart", "square"]
    bank = ConceptBank(words, [1] * 4, torch.nn.functional.normalize(tiny_clip.text_features(words), dim=-1))
    return d.images, d.first_captions(), store, bank


@pytest.fixture
def inline_flush_loop(monkeypatch):
    """Run the inline backend's flush_figures in a tight loop on another thread; collect what it displays."""
    from matplotlib_inline import backend_inline
    shown = []
    monkeypatch.setattr(backend_inline, "display", lambda fig, **kw: shown.append(fig))
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            backend_inline.show._draw_called = True        # as draw_if_interactive sets it during a callback
            backend_inline.flush_figures()
            time.sleep(0.001)                               # ~1,000 flushes a second; a redraw takes longer

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield shown
    stop.set()
    t.join()


def current(panel):
    return {name: c.value for name, c in panel.controls.items()}


def test_inspector_redraws_never_reach_the_inline_flush(inspector_inputs, inline_flush_loop):
    images, caps, store, bank = inspector_inputs
    base = PCMConfig.preset("tiny")
    panel = widgets.pcm_inspector(images, caps, store, bank, base)
    moves = [("index", 3), ("k", 2), ("m", 5), ("tau", 0.1), ("mode", "inference"), ("selection", "patch")]

    def touch():                                  # the kernel's subshell thread handling comm messages
        for name, value in moves:
            panel.controls[name].value = value

    t = threading.Thread(target=touch)
    t.start()
    t.join()
    assert inline_flush_loop == [], "the inline backend displayed (and closed) a figure mid-draw"
    assert panel.state["values"] == current(panel)
    assert panel.image.value == widgets.render_pcm_png(images, caps, store, bank, base=base, **current(panel))


def test_concurrent_moves_end_on_the_latest_values(inspector_inputs):
    images, caps, store, bank = inspector_inputs
    base = PCMConfig.preset("tiny")
    panel = widgets.pcm_inspector(images, caps, store, bank, base)
    threads = [threading.Thread(target=lambda: [setattr(panel.controls["index"], "value", i % 6) for i in range(7)]),
               threading.Thread(target=lambda: [setattr(panel.controls["m"], "value", m) for m in (1, 9, 4, 6)])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert panel.image.value == widgets.render_pcm_png(images, caps, store, bank, base=base, **current(panel))


def test_latest_wins_serialises_and_collapses():
    active, overlaps, drawn = [0], [0], []

    def draw(values):
        active[0] += 1
        overlaps[0] += active[0] > 1
        time.sleep(0.005)
        drawn.append(values["v"])
        active[0] -= 1

    redraw = widgets.LatestWins(draw)
    threads = [threading.Thread(target=lambda j=j: [redraw.request({"v": 100 * j + i}) for i in range(20)])
               for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 0, "two draws ran at once"
    assert len(drawn) < 80, "requests made during a draw collapse to the latest"
    assert drawn[-1] % 100 == 19, "the last request made (some thread's last) is the last drawn"
    redraw.request({"v": -1})
    assert drawn[-1] == -1 and redraw.draws == len(drawn)
