"""Live decoding without a kernel (vae_book.web + tools/site/assets/live-decoder.js).

- Node (no browser): the JavaScript matrix multiply decodes 24 latent points per shipped MLP model
  and must match PyTorch's `decode` to 1e-3 (max absolute pixel difference).
- Chromium, on the built site (`site`/`server` fixtures, tests/conftest.py): every page with a live
  decoder loads its weights, turns each `.vae-live` output into a live view, decodes 24 points per
  model in the page (compared with PyTorch as above), redraws the picture when the pointer moves
  over the plane or the slider moves, and logs no errors; with JavaScript off the static image shows.
"""
import json, shutil, subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
LIVE_JS = ROOT / "tools" / "site" / "assets" / "live-decoder.js"
TOL = 1e-3
N_POINTS = 24


def _points(model, n=N_POINTS, seed=0):
    "n codes spread over the prior's bulk, and labels cycling through the classes for a CVAE"
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=g)*1.5
    y = torch.arange(n) % model.n_classes if hasattr(model, "n_classes") else None
    return z, y


def _torch_decode(model, z, y):
    from vae_book.viz import decode
    return decode(model, z, y).reshape(len(z), -1).numpy()


def _shipped_mlp_models():
    "Every shipped checkpoint with an MLP decoder (the ones the site can decode live)"
    from vae_book.pretrained import RECIPES, weights_path
    return [n for n, r in RECIPES.items()
            if r.arch["name"] in ("mlp_vae", "cvae") and weights_path(n).exists()]


@pytest.mark.parametrize("name", _shipped_mlp_models())
def test_js_decoder_matches_torch_in_node(name, tmp_path):
    node = shutil.which("node")
    if not node: pytest.skip("node is not installed")
    import numpy as np
    from vae_book.pretrained import load_pretrained
    from vae_book.web import write_decoder_js
    model = load_pretrained(name)
    weights = write_decoder_js(model, tmp_path)
    z, y = _points(model)
    script = (f"require({json.dumps(str(weights))}); const L = require({json.dumps(str(LIVE_JS))});"
              f"const z = {json.dumps(z.tolist())}, y = {json.dumps(None if y is None else y.tolist())};"
              f"console.log(JSON.stringify(z.map((zi, i) => Array.from("
              f"L.decode({json.dumps(name)}, zi, y ? y[i] : null)))));")
    r = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    js = np.array(json.loads(r.stdout))
    diff = np.abs(js - _torch_decode(model, z, y)).max()
    assert diff <= TOL, f"{name}: max |JS - PyTorch| = {diff:.2e}"
    assert js.std() > 0.05  # real images, not a constant


def test_half_precision_decoding_in_node():
    "The base64 float16 unpacking covers normal, subnormal, signed and special values"
    node = shutil.which("node")
    if not node: pytest.skip("node is not installed")
    import base64
    import numpy as np
    vals = np.array([0, -0.0, 1, -2.5, 65504, 6e-8, 2**-14, 0.333, np.inf, -np.inf], "<f2")
    p = {"dtype": "f16", "shape": [len(vals)], "data": base64.b64encode(vals.tobytes()).decode()}
    script = (f"const L = require({json.dumps(str(LIVE_JS))});"
              f"console.log(JSON.stringify(Array.from(L.unpack({json.dumps(p)})).map(String)));")
    r = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = np.array([float(v) for v in json.loads(r.stdout)])
    assert np.array_equal(got, vals.astype(np.float64))


# ------------------------------------------------------------------------------ in Chromium
_DECODE_JS = """([name, z, y]) => z.map((zi, i) => Array.from(VAEBookLive.decode(name, zi, y ? y[i] : null)))"""
_VIEWS_JS = """() => (window.VAEBookLive ? VAEBookLive.views : []).map(v => ({
  model: v.cfg.model, view: v.cfg.view, z: v.z, y: v.y,
  fallback_hidden: getComputedStyle(v.el.querySelector('.vae-live-fallback')).display === 'none'}))"""
# the main canvas's grey levels (0..255) of view i
_PIXELS_JS = """(i) => { const c = VAEBookLive.views[i].el.querySelector('canvas.vae-live-main');
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).filter((_, k) => k % 4 === 0); }"""


def _live_pages(site):
    manifest = json.loads((site / "assets" / "pages.json").read_text())
    return {m["out"]: m["live_models"] for m in manifest if m.get("live_models")}


@pytest.fixture(scope="module")
def browser_ctx(request):
    from browser import CHROMIUM_ARGS, need_browser
    exe = need_browser()
    site, server = request.getfixturevalue("site"), request.getfixturevalue("server")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try: yield browser, site, server
        finally: browser.close()


def _open(browser, url, js=True, width=1280):
    from browser import is_local
    ctx = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=js,
                              service_workers="block")
    ctx.route("**/*", lambda r: r.continue_() if is_local(r.request.url) else r.abort())
    page = ctx.new_page()
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))
    page.goto(url, wait_until="load", timeout=60_000)
    return ctx, page, errors


@pytest.mark.browser
def test_live_pages_exist(site):
    pages = _live_pages(site)
    assert pages, "no page of the site has a live decoder (vae_book.web.live_decoder outputs)"
    for out, models in pages.items():
        for m in models: assert (site / "assets" / "decoders" / f"{m}.js").exists(), (out, m)


@pytest.mark.browser
def test_browser_decodes_like_pytorch(browser_ctx):
    import numpy as np
    from vae_book.pretrained import load_pretrained
    browser, site, server = browser_ctx
    checked = {}
    for out, models in _live_pages(site).items():
        if set(models) <= set(checked): continue
        ctx, page, errors = _open(browser, f"{server}/{out}")
        try:
            page.wait_for_function("() => window.VAEBookLive && VAEBookLive.ready", timeout=30_000)
            views = page.evaluate(_VIEWS_JS)
            assert {v["model"] for v in views} == set(models), (out, views)
            assert all(v["fallback_hidden"] for v in views), "a live view left its static image showing"
            for name in models:
                if name in checked: continue
                model = load_pretrained(name)
                z, y = _points(model)
                js = np.array(page.evaluate(_DECODE_JS, [name, z.tolist(), None if y is None else y.tolist()]))
                checked[name] = float(np.abs(js - _torch_decode(model, z, y)).max())
            # moving the pointer over a plane decodes and draws the point under it
            for i, v in enumerate(views):
                if v["view"] not in ("plane", "classes"): continue
                before = page.evaluate(_PIXELS_JS, i)
                plane = page.locator(".vae-live-plane").nth(sum(w["view"] in ("plane", "classes") for w in views[:i]))
                plane.scroll_into_view_if_needed()
                box = plane.bounding_box()
                page.mouse.move(box["x"] + box["width"]*0.85, box["y"] + box["height"]*0.2)
                after_view = page.evaluate(_VIEWS_JS)[i]
                assert after_view["z"][0] > 0.5 and after_view["z"][1] > 0.5, after_view
                after = page.evaluate(_PIXELS_JS, i)
                model = load_pretrained(v["model"])
                ref = _torch_decode(model, torch.tensor([after_view["z"]]),
                                    None if after_view["y"] is None else torch.tensor([after_view["y"]]))[0]
                assert np.abs(np.array(after)/255 - ref).max() <= 1/255 + TOL  # canvas: 8-bit grey
                assert np.abs(np.array(after) - np.array(before)).mean() > 1, "the picture did not change"
            assert not errors, f"{out}: {errors}"
        finally:
            ctx.close()
    assert checked and max(checked.values()) <= TOL, f"max |browser - PyTorch| per model: {checked}"


@pytest.mark.browser
def test_static_image_without_javascript(browser_ctx):
    browser, site, server = browser_ctx
    out = next(iter(_live_pages(site)))
    ctx, page, _ = _open(browser, f"{server}/{out}", js=False)
    try:
        imgs = page.locator(".vae-live .vae-live-fallback img")
        assert imgs.count() >= 1
        for i in range(imgs.count()):
            assert imgs.nth(i).is_visible()
            assert imgs.nth(i).evaluate("im => im.complete && im.naturalWidth > 0")
    finally:
        ctx.close()
