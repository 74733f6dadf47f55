"""The built site's latent-explorer page in headless Chromium: moving a plotly slider changes the picture.

The static twins of the widgets (vae_book.viz.*_slider_figure) are plotly figures with precomputed
frames; on the site, dragging their slider must swap the decoded image. We click the slider rail
like a reader would and compare the image's pixels before and after, with no console errors and no
request leaving 127.0.0.1. `_site/` comes from the shared `site` fixture (tests/conftest.py: built with
`tools/build_site.py --offline` unless it is newer than everything it is made from, or
VAE_BOOK_SITE_BUILT=1). Skips without playwright/Chromium unless VAE_BOOK_REQUIRE_BROWSER=1.
"""
import pytest

from browser import CHROMIUM_ARGS, chromium, is_local, need_browser

pytestmark = pytest.mark.browser


def _page_file(site):
    hits = sorted(site.rglob("*latent_explorer*.html"))
    return hits[0] if hits else None


@pytest.fixture(scope="module")
def page_url(request):
    need_browser()  # before building anything
    server, site = request.getfixturevalue("server"), request.getfixturevalue("site")
    page = _page_file(site)
    assert page is not None, f"no latent explorer page in {site}"
    return f"{server}/{page.relative_to(site).as_posix()}"


# In the page: the slider figures whose first trace is an image, their state, and the image's pixels.
_STATE_JS = """async (i) => {
  const figs = [...document.querySelectorAll('.plotly-graph-div')].filter(d =>
      d._fullLayout && (d._fullLayout.sliders || []).length && d.data && d.data[0] && d.data[0].type === 'image');
  if (i === null) return figs.map(d => (d._fullLayout.title && d._fullLayout.title.text) || '');
  const d = figs[i], td = d._transitionData || {};
  const img = d.querySelector('.imagelayer image, g.im image, image');
  const href = img ? (img.getAttribute('href') || img.getAttribute('xlink:href') || '') : '';
  let pixels = null;
  if (href) {
    const im = new Image(); im.src = href; await im.decode();
    const c = document.createElement('canvas'); c.width = im.naturalWidth; c.height = im.naturalHeight;
    const ctx = c.getContext('2d'); ctx.drawImage(im, 0, 0);
    const data = ctx.getImageData(0, 0, c.width, c.height).data;
    pixels = []; for (let k = 0; k < data.length; k += 4) pixels.push(data[k]);
  }
  return {active: d._fullLayout.sliders[0].active, n: d._fullLayout.sliders[0].steps.length,
          busy: !!(td._frameQueue && td._frameQueue.length) || !!td._animationRaf || !!td._frameWaitingCnt,
          href_len: href.length, pixels: pixels};
}"""


def _settled(page, i, timeout_ms=30_000):
    "wait until the figure is not animating (plotly may auto-play frames on load) and its image is drawn"
    prev, waited = None, 0
    while waited < timeout_ms:
        s = page.evaluate(_STATE_JS, i)
        if not s["busy"] and s["pixels"] and prev and prev["active"] == s["active"] and prev["pixels"] == s["pixels"]:
            return s
        prev = s; page.wait_for_timeout(300); waited += 300
    raise AssertionError(f"figure {i} never settled: {prev and {k: v for k, v in prev.items() if k != 'pixels'}}")


def test_slider_changes_the_image(page_url):
    from playwright.sync_api import sync_playwright
    errors, external = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
            ctx.set_default_timeout(30_000)

            def route(r):
                if is_local(r.request.url): r.continue_()
                else: external.append(r.request.url); r.abort()
            ctx.route("**/*", route)
            page = ctx.new_page()
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))
            page.goto(page_url, wait_until="load", timeout=60_000)
            page.wait_for_function("() => window.Plotly && document.querySelector('.plotly-graph-div .main-svg')",
                                   timeout=30_000)
            titles = page.evaluate(_STATE_JS, None)
            assert any("slide α" in t for t in titles), f"no interpolation slider figure on the page: {titles}"
            first = next(i for i, t in enumerate(titles) if "slide α" in t)
            for i in [first] + [j for j in range(len(titles)) if j != first]:
                before = _settled(page, i)
                div = page.locator(".plotly-graph-div").filter(has=page.locator(".slider-rail-touch-rect")).nth(i)
                div.scroll_into_view_if_needed()
                box = div.locator(".slider-rail-touch-rect").first.bounding_box()
                frac = 0.1 if before["active"] > before["n"]/2 else 0.9  # move far from where it is
                page.mouse.click(box["x"] + frac*box["width"], box["y"] + box["height"]/2)
                after = _settled(page, i)
                assert after["active"] != before["active"], f"figure {i} ({titles[i]}): the slider did not move"
                assert len(after["pixels"]) == len(before["pixels"])
                diff = sum(abs(a - b) for a, b in zip(after["pixels"], before["pixels"]))/len(before["pixels"])
                assert diff > 2, f"figure {i} ({titles[i]}): the image did not change (mean |diff| {diff:.2f})"
        finally:
            browser.close()
    assert not errors, f"console/page errors: {errors}"
    assert not external, f"requests leaving 127.0.0.1: {external}"
