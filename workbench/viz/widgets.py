"""ipywidgets control panels. Each wraps a pure render function that tests call directly.

    panel = pcm_inspector(images, captions, store, bank)     # display(panel) in a notebook
    panel.controls["m"].value = 4                            # widgets drive the same render function

Thread safety: JupyterLab 4.6 sends widget messages to kernel subshells, which ipykernel 7 handles on
other threads, and the inline backend's ``flush_figures`` (run after comm messages) shows and closes every
figure in pyplot's global list, including one a callback is still drawing. So nothing here uses pyplot
or ``interactive_output``: render functions return ``plots.WorkbenchFigure`` objects (outside pyplot),
their PNG goes into an ``ipywidgets.Image``, and ``LatestWins`` serialises redraws so that, however the
callbacks interleave, the image ends as the render of the latest control values.
"""
from __future__ import annotations

import math

import threading
from dataclasses import replace

import numpy as np

from . import plots
from ..config import PCMConfig, Profile
from .pcm_inspect import colour_object_patches, render_pcm, run_pcm


class LatestWins:
    """Serialise calls of ``draw(values)``: one runs at a time; requests made meanwhile collapse to the
    latest, which is drawn next. Safe to call from any thread; the caller that finds a draw running returns
    at once (the running one draws its values)."""

    def __init__(self, draw):
        self._draw = draw
        self._state = threading.Lock()       # guards _pending
        self._busy = threading.Lock()        # held while drawing
        self._pending = None
        self.draws = 0

    def request(self, values: dict) -> None:
        with self._state:
            self._pending = dict(values)
        while self._busy.acquire(blocking=False):
            try:
                while True:
                    with self._state:
                        values, self._pending = self._pending, None
                    if values is None:
                        break
                    self._draw(values)
                    self.draws += 1
            finally:
                self._busy.release()
            with self._state:                # a request that arrived after our last check, before release
                if self._pending is None:
                    return


def render_pcm_view(images: np.ndarray, captions: list, store, bank, index: int, k: int, m: int, tau: float,
                    mode: str, selection: str = "pair", base: PCMConfig | None = None):
    """Pure: the Figure for image ``index`` under (K, M, tau, mode, selection); returns (fig, result)."""
    if not 0 <= index < len(images):
        raise ValueError(f"index={index} is outside [0, {len(images)}); pick an image in range.")
    cfg = replace(base or Profile("sandbox").pcm, k=k, m=m, tau=tau, selection=selection)
    result = run_pcm(store, [index], bank, cfg)
    labels = colour_object_patches(images[index], captions[index], result.grid)
    fig = render_pcm(images[index], result, 0, bank.words, mode=mode, caption=captions[index], labels=labels,
                     m=m, tau=tau, rule=selection)
    return fig, result


def render_pcm_png(images: np.ndarray, captions: list, store, bank, base: PCMConfig | None = None,
                   **values) -> bytes:
    """Pure: the PNG bytes the inspector shows for these control values (what a browser test compares)."""
    fig, _ = render_pcm_view(images, captions, store, bank, base=base, **values)
    return plots.png_bytes(fig)


def pcm_inspector(images: np.ndarray, captions: list, store, bank, base: PCMConfig | None = None):
    """Image picker, K / M / tau sliders, selection rule and train/inference toggle around ``render_pcm_view``.

    ``panel.state`` holds the values and PCM result last drawn and the PNG shown."""
    import ipywidgets as W
    base = base or Profile("sandbox").pcm
    n_patches = store.get([0], keys=["patches"])["patches"].shape[1]
    controls = {
        "index": W.IntSlider(value=0, min=0, max=len(images) - 1, description="image"),
        "k": W.IntSlider(value=base.k, min=1, max=min(10, len(bank)), description="K"),
        "m": W.IntSlider(value=base.m, min=0, max=n_patches, description="M"),
        # tau around the preset's (carried: 1 x the CLIP's own temperature, 1/800 on the sandbox)
        "tau": W.FloatLogSlider(value=base.tau, base=10, min=round(math.log10(base.tau)) - 1,
                                max=round(math.log10(base.tau)) + 2, step=0.1, description="tau"),
        "mode": W.ToggleButtons(options=["train", "inference"], value="train", description="mode"),
        "selection": W.ToggleButtons(options=["pair", "patch"], value=base.selection, description="rule"),
    }
    image = W.Image(format="png", layout=W.Layout(width="auto"))
    image.add_class("wb-pcm-view")
    state = {}

    def draw(values):
        fig, result = render_pcm_view(images, captions, store, bank, base=base, **values)
        png = plots.png_bytes(fig)
        state.update(values=values, result=result, png=png)
        image.value = png

    redraw = LatestWins(draw)

    def on_change(_=None):
        redraw.request({name: c.value for name, c in controls.items()})

    for c in controls.values():
        c.observe(on_change, names="value")
    on_change()
    box = W.VBox([W.HBox([controls["index"], controls["k"], controls["m"]]),
                  W.HBox([controls["tau"], controls["mode"], controls["selection"]]), image])
    box.add_class("wb-pcm-inspector")
    box.controls, box.state, box.image, box.redraw = controls, state, image, redraw
    return box


def live_training_plot(every: int = 25):
    """An Image widget and a ``callback(history, step)`` for ``train_captioner`` that redraws
    ``plots.training_curves`` every ``every`` steps (and after each validation). ``out.draws`` counts redraws."""
    import ipywidgets as W

    from .plots import training_curves
    out = W.Image(format="png", layout=W.Layout(width="auto"))
    out.add_class("wb-live-plot")
    seen = {"val": 0}

    def draw(values):
        out.value = plots.png_bytes(training_curves(values["history"]))

    redraw = LatestWins(draw)

    def callback(history, step):
        if step % every and len(history["val_cider"]) == seen["val"]:
            return
        seen["val"] = len(history["val_cider"])
        redraw.request({"history": {k: list(v) for k, v in history.items() if isinstance(v, list)}})
    out.redraw = redraw
    return out, callback
