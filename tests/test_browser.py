"""The notebooks as a user sees them: JupyterLab in headless Chromium at 1280 px, smoke mode.

* notebook 03: Run All, then move every control of the PCM inspector once (image, K, M, tau, mode, rule);
  after each move the figure the page shows must be byte for byte the render function's output for the
  kernel's current control values (so neither blank nor half-drawn), and differ from the one before;
* notebook 04: the live loss plot updates while the captioner trains;
* notebooks 01-06: every figure is shown unscaled (so its text keeps the >= 9 pt of ``plots``).

JupyterLab runs with its defaults, comms over kernel subshells included (the setting under which pyplot
figures drawn in widget callbacks came out blank or half-drawn). Screenshots land in ``runs/browser/``.
Run with ``pytest -m browser``; skipped, with the reason, where Chromium, its driver or Selenium is missing.
"""
import hashlib
import os
import time
from pathlib import Path

import pytest

from labdriver import REPO, Lab, kernel_eval, missing

REQUIRED = os.environ.get("WORKBENCH_REQUIRE_BROWSER") == "1"         # .ci/run: a missing browser fails
pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(missing()) and not REQUIRED, reason=missing() or "ok")]
SHOTS = REPO / "runs" / "browser"
ENV = {"WORKBENCH_SMOKE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture
def lab(tmp_path):
    if missing():
        pytest.fail(f"WORKBENCH_REQUIRE_BROWSER=1 but {missing()}")
    before = {p: p.read_bytes() for p in sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))}
    lab = Lab(tmp_path, env=ENV)
    lab.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    yield lab
    lab.close()
    changed = [p.name for p, data in before.items() if p.read_bytes() != data]
    assert not changed, f"the browser session wrote to the repository's notebooks {changed} (autosave)"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


EXPECTED_03 = """
import hashlib, json
_v = {n: c.value for n, c in panel.controls.items()}
_png = widgets.render_pcm_png(syn, captions, syn_store, bank, base=PCM, **_v)
print(json.dumps({"values": _v, "sha": hashlib.sha256(_png).hexdigest()}))
"""


def _control(lab, name):
    from selenium.webdriver.common.by import By
    root = "//div[contains(@class,'wb-pcm-inspector')]"
    if name in ("inference", "patch"):
        return lab.driver.find_element(By.XPATH, f"{root}//button[normalize-space(.)='{name}']")
    return lab.driver.find_element(
        By.XPATH, f"{root}//div[contains(@class,'widget-slider')][label[text()='{name}']]//div[contains(@class,'noUi-handle')]")


def _move(lab, control):
    from selenium.webdriver.common.keys import Keys
    el = _control(lab, control)
    if control in ("inference", "patch"):
        el.click()
    else:
        lab.js("arguments[0].focus()", el)
        el.send_keys(Keys.ARROW_RIGHT)


def test_notebook03_inspector_redraws_completely_on_every_move(lab):
    from selenium.webdriver.common.by import By
    lab.open("notebooks/03_patch_concepts.ipynb")
    lab.run_all()
    kc = lab.kernel()
    view = lambda: lab.driver.find_element(By.CSS_SELECTOR, ".wb-pcm-inspector img.wb-pcm-view")  # noqa: E731
    shown = lambda: sha(lab.image_bytes(view()))  # noqa: E731
    first = kernel_eval(kc, EXPECTED_03)
    lab.wait(lambda: shown() == first["sha"], 60, "the first drawing")
    img = view()
    natural, width = lab.js("return [arguments[0].naturalWidth, arguments[0].clientWidth]", img)
    assert width >= natural - 1, f"the inspector is shown scaled down ({width} of {natural} px): its text shrinks"
    lab.screenshot(SHOTS / "03_inspector_0_start.png", img)
    before, values = first["sha"], first["values"]
    moves = [("image", "index"), ("K", "k"), ("M", "m"), ("tau", "tau"), ("inference", "mode"), ("patch", "selection")]
    for step, (control, key) in enumerate(moves, 1):
        _move(lab, control)
        state = {}

        def settled():
            state.update(kernel_eval(kc, EXPECTED_03))
            return state["values"][key] != values[key] and shown() == state["sha"]
        try:
            lab.wait(settled, 90, f"the figure after moving {control}", every=0.5)
        finally:
            lab.screenshot(SHOTS / f"03_inspector_{step}_{key}.png", view())
        assert state["sha"] != before, f"moving {control} ({values[key]} -> {state['values'][key]}) changed nothing"
        changed = {k for k in values if values[k] != state["values"][k]}
        assert changed == {key}, f"moving {control} changed {changed}"
        before, values = state["sha"], state["values"]
    kc.stop_channels()


LIVE_04 = """
import hashlib, json
print(json.dumps({"sha": hashlib.sha256(out.value).hexdigest(), "draws": out.redraw.draws}))
"""


WATCH_LIVE = """
window.__live = [];
new MutationObserver(changes => {
  for (const c of changes) {
    const nodes = c.type === "attributes" ? [c.target]
      : [...c.addedNodes].flatMap(n => n.querySelectorAll ? [n, ...n.querySelectorAll("img.wb-live-plot")] : []);
    for (const n of nodes)
      if (n.classList && n.classList.contains("wb-live-plot") && n.src && window.__live.at(-1) !== n.src)
        window.__live.push(n.src);
  }
}).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["src"]});
"""


def test_notebook04_live_plot_updates_during_training(lab):
    from selenium.webdriver.common.by import By
    lab.open("notebooks/04_training.ipynb")
    lab.js(WATCH_LIVE)                      # every image the page puts in the live plot, as it arrives
    lab.run_all()
    kc = lab.kernel()
    live = kernel_eval(kc, LIVE_04)
    seen = lab.js("return window.__live")
    assert live["draws"] >= 3, f"the callback redrew the live plot {live['draws']} times"
    assert len(seen) >= 3, f"the page showed {len(seen)} versions of the live plot while training"
    img = lab.driver.find_element(By.CSS_SELECTOR, "img.wb-live-plot")
    assert sha(lab.image_bytes(img)) == live["sha"], "the page shows the kernel's last live plot, complete"
    lab.screenshot(SHOTS / "04_live_plot.png", img)
    kc.stop_channels()


@pytest.mark.parametrize("notebook", ["01_modality_gap", "02_synthesis", "03_patch_concepts", "04_training",
                                      "05_evaluation", "06_methods"])
def test_every_figure_is_shown_unscaled(lab, notebook):
    from selenium.webdriver.common.by import By
    lab.open(f"notebooks/{notebook}.ipynb")
    lab.run_all()
    time.sleep(1.0)
    imgs = lab.driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
    assert imgs, "the notebook shows no figure"
    out = SHOTS / notebook
    for i, img in enumerate(imgs):
        natural, width = lab.js("return [arguments[0].naturalWidth, arguments[0].clientWidth]", img)
        lab.screenshot(out / f"figure_{i:02d}.png", img)
        assert natural > 0, f"figure {i} of {notebook} is blank"
        assert width >= natural - 1, f"figure {i} of {notebook} is shown at {width} of {natural} px: its text shrinks"
    Path(out / "count.txt").write_text(f"{len(imgs)} figures\n")
