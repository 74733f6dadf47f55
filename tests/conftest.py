"""Fixtures shared by several test files."""
import functools, http.server, os, subprocess, sys, sysconfig, threading
from pathlib import Path

import pytest
import torch

from helpers import run_clean
from vae_book.core import set_seed
from vae_book.models.vae import mlp_vae

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_site"
BUILD_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def vae2():
    "A small untrained 2-D VAE (fixed seed), in eval mode"
    set_seed(0); return mlp_vae(latent_dim=2, hidden_dim=32).eval()


def pytest_runtest_setup(item):
    "`@pytest.mark.cuda` tests need a CUDA GPU: skip them where there is none"
    if item.get_closest_marker("cuda") and not torch.cuda.is_available(): pytest.skip("needs a CUDA GPU")


# ----------------------------------------------------------------- the built site, for the browser tests
def _site_is_fresh():
    "_site/ is newer than every notebook, the package and the builder (so a rebuild would match)."
    stamp = SITE / "assets" / "pages.json"
    if not stamp.exists(): return False
    inputs = [*(ROOT / "nbs").rglob("*.ipynb"), ROOT / "nbs" / "sidebar.yml", *(ROOT / "vae_book").rglob("*.py"),
              ROOT / "tools" / "build_site.py", *(ROOT / "tools" / "site").rglob("*"), ROOT / "pyproject.toml"]
    newest = max((p.stat().st_mtime for p in inputs if p.is_file()), default=0)
    return stamp.stat().st_mtime > newest


@pytest.fixture(scope="session")
def site():
    if os.environ.get("VAE_BOOK_SITE_BUILT") == "1" and (SITE / "index.html").exists(): return SITE
    if os.environ.get("VAE_BOOK_SITE_BUILT") != "0" and _site_is_fresh(): return SITE
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--offline"], cwd=ROOT,
                       capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert r.returncode == 0, f"build_site.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert (SITE / "index.html").exists()
    return SITE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture(scope="session")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free port
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown(); httpd.server_close()


# ----------------------------------------------------------------- the built wheel, for the packaging tests
def _new_setuptools():
    try:
        import setuptools
        return int(setuptools.__version__.split(".")[0]) >= 77  # pyproject: setuptools>=77
    except Exception: return False


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    "`pip wheel .` once per session"
    out = tmp_path_factory.mktemp("wheelhouse")
    base = [sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "-q", "-w", out]
    # without build isolation when this env can build it (fast, offline); else pip's isolated build
    r = run_clean(base + ["--no-build-isolation"]) if _new_setuptools() else None
    if r is None or r.returncode:
        r = run_clean(base)
    assert r.returncode == 0, f"pip wheel failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    wheels = list(out.glob("vae_book-*.whl"))
    assert len(wheels) == 1, f"expected one vae_book wheel, got {wheels}"
    return wheels[0]


@pytest.fixture(scope="session")
def wheel_venv(wheel, tmp_path_factory):
    "A fresh venv with the wheel installed; third-party packages borrowed from this environment. Returns its python"
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    r = run_clean([sys.executable, "-m", "venv", "--without-pip", venv])
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    purelib = Path(run_clean([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    r = run_clean([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "-q", wheel])
    assert r.returncode == 0, f"installing the wheel failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    # then third-party deps (torch, plotly, ...) from this environment, without running its
    # .pth files (written after the install, so pip never sees this env's editable vae_book)
    dev_sites = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_vae_book_dev_deps.pth").write_text("".join(f"{p}\n" for p in sorted(dev_sites)))
    return py
