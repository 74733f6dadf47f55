"""What the browser tests share: finding Chromium, its flags, and skipping (or failing) when it is missing."""
import os, shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

REQUIRE = os.environ.get("VAE_BOOK_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium():
    "Path of a Chromium binary ($VAE_BOOK_CHROMIUM, else the first on PATH), or None"
    for c in (os.environ.get("VAE_BOOK_CHROMIUM"), shutil.which("chromium"),
              shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if c and Path(c).exists(): return c
    return None


def skip_or_fail(reason):
    "Skip the test, or fail it when VAE_BOOK_REQUIRE_BROWSER=1 (CI), so a missing browser cannot pass silently"
    if REQUIRE: pytest.fail(f"{reason} (VAE_BOOK_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def need_browser():
    "Skip (or fail) unless playwright and a Chromium binary are both present; returns the binary's path"
    try: import playwright.sync_api  # noqa: F401
    except ImportError: skip_or_fail("playwright is not installed (pip install playwright)")
    exe = chromium()
    if not exe: skip_or_fail("no Chromium found (apt-get install chromium, or set VAE_BOOK_CHROMIUM)")
    return exe


def is_local(url):
    "Whether a request stays on this machine: data/blob/about URLs or 127.0.0.1"
    u = urlparse(url)
    return u.scheme in ("data", "blob", "about") or u.hostname == "127.0.0.1"
