"""ipywidgets control panels. Each wraps a pure render function that tests call directly.

    panel = pcm_inspector(images, captions, store, bank)     # display(panel) in a notebook
    panel.controls["m"].value = 4                            # widgets drive the same render function
"""
from __future__ import annotations

from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np

from .config import PCMConfig
from .pcm_inspect import colour_object_patches, render_pcm, run_pcm


def render_pcm_view(images: np.ndarray, captions: list, store, bank, index: int, k: int, m: int, tau: float,
                    mode: str, selection: str = "pair", base: PCMConfig | None = None):
    """Pure: the Figure for image ``index`` under (K, M, tau, mode, selection); returns (fig, result)."""
    if not 0 <= index < len(images):
        raise ValueError(f"index={index} is outside [0, {len(images)}); pick an image in range.")
    cfg = replace(base or PCMConfig.preset("sandbox"), k=k, m=m, tau=tau, selection=selection)
    result = run_pcm(store, [index], bank, cfg)
    labels = colour_object_patches(images[index], captions[index], result.grid)
    fig = render_pcm(images[index], result, 0, bank.words, mode=mode, caption=captions[index], labels=labels)
    return fig, result


def pcm_inspector(images: np.ndarray, captions: list, store, bank, base: PCMConfig | None = None):
    """Image picker, K / M / tau sliders, selection rule and train/inference toggle around ``render_pcm_view``."""
    import ipywidgets as W
    from IPython.display import display
    base = base or PCMConfig.preset("sandbox")
    n_patches = store.get([0], keys=["patches"])["patches"].shape[1]
    controls = {
        "index": W.IntSlider(value=0, min=0, max=len(images) - 1, description="image"),
        "k": W.IntSlider(value=base.k, min=1, max=min(10, len(bank)), description="K"),
        "m": W.IntSlider(value=base.m, min=0, max=n_patches, description="M"),
        "tau": W.FloatLogSlider(value=base.tau, base=10, min=-3, max=0, step=0.1, description="tau"),
        "mode": W.ToggleButtons(options=["train", "inference"], value="train", description="mode"),
        "selection": W.ToggleButtons(options=["pair", "patch"], value=base.selection, description="rule"),
    }
    out = W.Output()
    state = {}

    def draw(**values):
        fig, result = render_pcm_view(images, captions, store, bank, base=base, **values)
        state.update(values=values, result=result)
        out.clear_output()
        with out:
            display(fig)
        plt.close(fig)

    W.interactive_output(draw, controls)
    box = W.VBox([W.HBox([controls["index"], controls["k"], controls["m"]]),
                  W.HBox([controls["tau"], controls["mode"], controls["selection"]]), out])
    box.controls, box.state = controls, state       # state: the values and PCM result last drawn
    return box


def live_training_plot(every: int = 25):
    """An Output widget and a ``callback(history, step)`` for ``train_captioner`` that redraws
    ``plots.training_curves`` every ``every`` steps (and after each validation)."""
    import ipywidgets as W
    from IPython.display import display

    from .plots import training_curves
    out = W.Output()
    seen = {"val": 0}

    def callback(history, step):
        if step % every and len(history["val_cider"]) == seen["val"]:
            return
        seen["val"] = len(history["val_cider"])
        fig = training_curves(history)
        out.clear_output()           # outside the context: clear_output(wait=True) inside it hangs nbclient
        with out:
            display(fig)
        plt.close(fig)
    return out, callback
