"""The latent explorer in a real JupyterLab, driven by headless Chromium.

Starts JupyterLab on 127.0.0.1 (free port, random token, --allow-root, no browser) in a temp folder
holding a copy of the chapter notebook cut after its interpolation-explorer cell, runs the cells,
moves the α slider with the keyboard, and checks that the decoded image's pixels change. Every wait
has a hard timeout and the server is always stopped. Skips without playwright/Chromium unless
VAE_BOOK_REQUIRE_BROWSER=1.
"""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

from browser import CHROMIUM_ARGS, chromium, need_browser, skip_or_fail

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT / "nbs" / "06a_latent_explorer.ipynb"
SERVER_START_S, RUN_CELLS_MS, CHANGE_MS = 180, 300_000, 60_000


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _cut_notebook(dst: Path):
    "the chapter up to (and including) the cell that builds the interpolation explorer, outputs cleared"
    nb = json.loads(NB.read_text())
    cells = []
    for c in nb["cells"]:
        if c["cell_type"] == "code": c["outputs"], c["execution_count"] = [], None
        cells.append(c)
        if c["cell_type"] == "code" and "interpolation_explorer(" in "".join(c["source"]) and "ex = " in "".join(c["source"]):
            break
    else:
        raise AssertionError("the chapter has no `ex = interpolation_explorer(...)` cell")
    nb["cells"] = cells
    nb["metadata"].pop("widgets", None)
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    dst.write_text(json.dumps(nb))


# the decoded image's pixels (the widget's <img class="vae-decoded">, a blob: URL, same origin)
_PIXELS_JS = """async () => {
  const imgs = [...document.querySelectorAll('img.vae-decoded')];
  if (!imgs.length) return null;
  const img = imgs[imgs.length - 1];
  if (!img.complete || !img.naturalWidth) return null;
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data; const out = [];
  for (let k = 0; k < d.length; k += 16) out.push(d[k]);
  return out;
}"""


def _wait(fn, timeout_s, what):
    t = time.time()
    while time.time() - t < timeout_s:
        v = fn()
        if v: return v
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def test_slider_changes_decoded_image_in_jupyterlab(tmp_path):
    need_browser()
    from playwright.sync_api import sync_playwright
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        try: import jupyterlab  # noqa: F401
        except ImportError: skip_or_fail("jupyterlab is not installed")
    work = tmp_path / "lab"; work.mkdir()
    _cut_notebook(work / "explorer.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "settings"  # start the notebook's kernel without asking; no news pop-up
    for ext, value in (("notebook-extension/tracker", {"autoStartDefaultKernel": True}),
                       ("apputils-extension/notification", {"fetchNews": "false"})):
        f = settings / "@jupyterlab" / f"{ext}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True); f.write_text(json.dumps(value))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "VAE_BOOK_DATASET": "fashion"}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={work}", "--LabApp.news_url=None", "--ServerApp.terminals_enabled=False"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            if server.poll() is not None: raise AssertionError(f"jupyterlab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}")
            try: return urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).status == 200
            except OSError: return False
        _wait(up, SERVER_START_S, "JupyterLab to start")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS, timeout=60_000)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}&reset", wait_until="domcontentloaded", timeout=120_000)
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                def dialog():  # e.g. "Select Kernel": accept the preselected Python kernel
                    d = page.locator(".jp-Dialog .jp-mod-accept")
                    if d.count() and d.first.is_visible(): d.first.click(); return True
                    return False

                def idle():
                    dialog()
                    return page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0 or \
                        "Idle" in page.locator(".jp-StatusBar-Widget").all_inner_texts().__str__()
                _wait(idle, 120, "an idle kernel")

                def run_all():  # command mode, select every cell, run them (Shift+Enter)
                    page.locator(".jp-Notebook .jp-Cell").first.click()
                    page.keyboard.press("Escape"); page.keyboard.press("Control+a"); page.keyboard.press("Shift+Enter")
                def started():  # a prompt shows [*] or [n]: the kernel took the cells
                    return any(("*" in t or any(ch.isdigit() for ch in t))
                               for t in page.locator(".jp-InputPrompt").all_inner_texts())
                page.wait_for_timeout(3000)  # a kernel that just said "Idle" may still drop requests
                run_all(); t0 = time.time(); t_run = t0; shown = False
                while time.time() - t0 < RUN_CELLS_MS/1000 and not shown:
                    if dialog() or (not started() and time.time() - t_run > 20):  # not taken: run again
                        page.wait_for_timeout(2000); run_all(); t_run = time.time()
                    shown = page.locator("img.vae-decoded").count() > 0
                    if not shown: page.wait_for_timeout(1000)
                try: page.wait_for_selector("img.vae-decoded", timeout=5_000, state="attached")
                except Exception:
                    page.screenshot(path=str(tmp_path / "lab.png"))
                    raise AssertionError(f"the explorer never appeared; screenshot {tmp_path / 'lab.png'}; server log: "
                                         f"{(tmp_path / 'lab.log').read_text()[-1500:]}")
                before = _wait(lambda: page.evaluate(_PIXELS_JS), 60, "the decoded image to load")
                slider = page.locator(".widget-slider", has=page.locator("text=α")).last
                handle = slider.locator(".noUi-handle").first
                handle.scroll_into_view_if_needed()
                value = slider.locator(".widget-readout")
                v0 = value.inner_text()
                handle.focus()
                for _ in range(5): page.keyboard.press("ArrowRight")  # 5 steps of 0.05 (or back, if at the end)
                page.wait_for_timeout(300)
                if value.inner_text() == v0:  # keyboard not taken (already at the end?): go left instead
                    for _ in range(5): page.keyboard.press("ArrowLeft")
                v1 = value.inner_text()
                assert v1 != v0, f"the α slider did not move with the keyboard (readout {v0!r})"
                after = _wait(lambda: (p := page.evaluate(_PIXELS_JS)) and p != before and p, CHANGE_MS / 1000,
                              f"the decoded image to change after moving α from {v0} to {v1}")
                diff = sum(abs(a - b) for a, b in zip(after, before))/len(before)
                assert diff > 1, f"the decoded image barely changed (mean |diff| {diff:.2f})"
            finally:
                browser.close()
    finally:
        try: os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL); server.wait(timeout=10)
        log.close()
