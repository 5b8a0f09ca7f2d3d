"""Drive JupyterLab in headless Chromium as a user does: start the server from the project's environment on
a free local port, open a notebook, Run All, move widgets, read what the page shows, take screenshots.

Chromium and its driver come from Debian's packages (``chromium``, ``chromium-driver``); Selenium drives
them and never downloads a browser. ``missing()`` says what is absent, for a clear skip reason.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[1]


def missing() -> str:
    """Why the browser tests cannot run here ("" when they can)."""
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            return f"{path} not found: install Debian's {pkg} (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server and a headless Chromium window (1280 x 900) pointed at it."""

    def __init__(self, tmp: Path, env: dict | None = None, width: int = 1280, height: int = 900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.tmp, self.port, self.token = Path(tmp), _free_port(), "wb-browser-test"
        self.runtime = self.tmp / "runtime"
        settings = self.tmp / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                               "checkForUpdates": False}))
        docs = self.tmp / "settings" / "@jupyterlab" / "docmanager-extension"   # the repo's notebooks stay as
        docs.mkdir(parents=True, exist_ok=True)                                # committed: no autosave of outputs
        (docs / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
        base = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}     # the kernel keeps its inline backend
        full_env = {**base, "JUPYTER_RUNTIME_DIR": str(self.runtime),
                    "JUPYTERLAB_SETTINGS_DIR": str(self.tmp / "settings"),
                    "JUPYTERLAB_WORKSPACES_DIR": str(self.tmp / "workspaces"),
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
        self.log = open(self.tmp / "jupyterlab.log", "w")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={REPO}", "--allow-root"],
            cwd=REPO, env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_for_server()
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", f"--window-size={width},{height}", f"--user-data-dir={self.tmp / 'chrome'}"):
            opts.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_script_timeout(60)

    def _wait_for_server(self, timeout: float = 120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.server.poll() is not None:
                raise RuntimeError(f"jupyterlab exited: see {self.tmp / 'jupyterlab.log'}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError("jupyterlab did not start")

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.url}/api/{path}?token={self.token}", timeout=10) as r:
            return json.loads(r.read())

    def close(self):
        try:
            self.driver.quit()
        finally:
            self.server.terminate()
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()
            self.log.close()

    # --- the page -------------------------------------------------------------------------------------
    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, predicate, timeout: float, what: str, every: float = 0.25):
        t0 = time.time()
        while time.time() - t0 < timeout:
            value = predicate()
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}")

    def open(self, notebook: str, timeout: float = 180):
        """Open ``notebook`` (a path under the repo) and wait until its kernel is idle."""
        self.driver.get(f"{self.url}/lab/tree/{notebook}?token={self.token}&reset")
        self.wait(lambda: self.js("return document.querySelectorAll('.jp-Notebook .jp-Cell').length"), timeout,
                  "the notebook's cells")
        self.wait(lambda: self.kernel_id() and self.kernel_state() == "idle", timeout, "an idle kernel")

    def kernel_id(self) -> str | None:
        sessions = self.api("sessions")
        return sessions[0]["kernel"]["id"] if sessions else None

    def kernel_state(self) -> str:
        return self.api(f"kernels/{self.kernel_id()}")["execution_state"]

    def command(self, menu: str, command: str):
        """Click a menu of the menu bar, then the item that runs ``command`` (a JupyterLab command id)."""
        from selenium.webdriver.common.by import By
        self.driver.find_element(By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][.//*[text()='{menu}']]").click()
        self.wait(lambda: self.driver.find_elements(By.CSS_SELECTOR, f"li[data-command='{command}']"), 10,
                  f"the menu item {command}")[0].click()

    def prompts(self) -> list:
        return self.js("return [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
                       ".map(e => e.textContent.trim())")

    def run_all(self, timeout: float = 1500, during=None):
        """Run All and wait until every code cell has run (``during()`` is called while waiting)."""
        self.command("Run", "runmenu:run-all")
        time.sleep(1.0)

        def done():
            if during:
                during()
            p = self.prompts()
            return all(x.startswith("[") and x[1:-2].strip().isdigit() for x in p) and self.kernel_state() == "idle"
        self.wait(done, timeout, "Run All to finish", every=0.5)
        errors = self.js("return [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="
                         "\"application/vnd.jupyter.stderr\"]')].map(e => e.textContent)"
                         ".filter(t => t.includes('Traceback') || t.includes('Error'))")
        if errors:
            raise AssertionError(f"a cell raised: {errors[0][-2000:]}")

    def image_bytes(self, element) -> bytes:
        """The bytes behind an <img> as the page holds them (its blob or data URL)."""
        data = self.driver.execute_async_script(
            "const [img, done] = arguments; fetch(img.src).then(r => r.blob()).then(b => {"
            " const f = new FileReader(); f.onload = () => done(f.result.split(',')[1]); f.readAsDataURL(b); })"
            ".catch(e => done(null));", element)
        return base64.b64decode(data) if data else b""

    def screenshot(self, path: Path, element=None):
        path.parent.mkdir(parents=True, exist_ok=True)
        if element is not None:
            self.js("arguments[0].scrollIntoView({block: 'center'})", element)
            time.sleep(0.3)
            element.screenshot(str(path))
        else:
            self.driver.save_screenshot(str(path))
        return path

    # --- the kernel behind the page --------------------------------------------------------------------
    def kernel(self):
        """A client on the notebook's own kernel (its connection file), to ask what the render functions give."""
        from jupyter_client import BlockingKernelClient
        kc = BlockingKernelClient(connection_file=str(self.runtime / f"kernel-{self.kernel_id()}.json"))
        kc.load_connection_file()
        kc.start_channels()
        return kc


def kernel_eval(kc, code: str, timeout: float = 120):
    """Run ``code`` in the kernel; its last line must print one JSON value, which is returned."""
    out = []
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=lambda m: out.append(m))
    if reply["content"]["status"] != "ok":
        raise AssertionError(f"kernel error: {reply['content'].get('evalue')}")
    text = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
    return json.loads(text.strip().splitlines()[-1])
