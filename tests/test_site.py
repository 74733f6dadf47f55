"""The offline website (tools/build_site.py) in headless Chromium.

Builds `_site/` once per session (reused when it is newer than the notebooks, the package and
the builder, or when VAE_BOOK_SITE_BUILT=1; VAE_BOOK_SITE_BUILT=0 forces a build), serves it on
127.0.0.1, opens every page and checks: no console errors, no page errors, no request that
leaves 127.0.0.1, no broken local file, plotly figures drawn, saved widgets rendered,
LaTeX typeset. Skips without playwright/Chromium unless VAE_BOOK_REQUIRE_BROWSER=1.
"""
import time
from pathlib import Path

import pytest

from browser import CHROMIUM_ARGS, is_local, need_browser

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
PAGE_TIMEOUT_MS = 60_000  # generous: CI machines can be busy
# Run in the page after load: wait (bounded) for plotly, widgets and MathJax, then report.
_SETTLE_JS = """async (timeoutMs) => {
  const t0 = Date.now(), sleep = ms => new Promise(r => setTimeout(r, ms));
  const nViews = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  const done = () => {
    const plots = [...document.querySelectorAll('.plotly-graph-div')];
    const drawn = d => d.classList.contains('js-plotly-plot') && d.querySelector('.main-svg') && Array.isArray(d.data);
    const plotsOk = plots.every(drawn);
    const widgetsOk = document.querySelectorAll('.jupyter-widgets.widget-inline-hbox, .widget-inline-hbox, .jupyter-widgets.widget-container, .widget-box, .jupyter-widgets-view').length >= nViews;
    return plotsOk && widgetsOk && mjDone;
  };
  let mjDone = !(window.MathJax && MathJax.startup && MathJax.startup.promise);
  if (!mjDone) MathJax.startup.promise.then(() => { mjDone = true; }, () => { mjDone = true; });
  while (!done() && Date.now() - t0 < timeoutMs) await sleep(100);
  const plots = [...document.querySelectorAll('.plotly-graph-div')];
  return {
    plots: plots.length,
    plots_drawn: plots.filter(d => d.matches('.js-plotly-plot') && d.querySelector('.main-svg') && Array.isArray(d.data) && d.data.length > 0).length,
    traces: plots.reduce((n, d) => n + (Array.isArray(d.data) ? d.data.length : 0), 0),
    plotly_global: typeof window.Plotly,
    widget_views: nViews,
    widgets_drawn: document.querySelectorAll('.widget-inline-hbox, .widget-box, .widget-html, .widget-label, .widget-output').length,
    math_left: [...document.querySelectorAll('.jp-RenderedMarkdown')].map(el => {
      const c = el.cloneNode(true); c.querySelectorAll('pre, code, script').forEach(x => x.remove());
      return (c.textContent.match(/\\$[^$\\n]+\\$/g) || []).length; }).reduce((a, b) => a + b, 0),
    math_drawn: document.querySelectorAll('mjx-container').length,
    mathjax: window.MathJax && MathJax.version || null,
    plot_math_left: plots.filter(d => [...d.querySelectorAll('text')].some(
      t => getComputedStyle(t).display !== 'none' && /^\\s*\\$[^$]+\\$\\s*$/.test(t.textContent))).length,
    plot_math_drawn: document.querySelectorAll('.plotly-graph-div g[class*="math-group"]').length,
    settled: done(), ms: Date.now() - t0,
  };
}"""


def _router(current):
    "Let requests to 127.0.0.1 through; record (for the page being visited) and abort the rest."
    def route(route, request):
        if is_local(request.url): route.continue_()
        else:
            rec = current["rec"]
            if request.url not in rec["external"]: rec["external"].append(request.url)
            route.abort()
    return route


def _listen(page, rec):
    def on_request(req):
        rec["requests"] += 1
        rec["last_request"] = time.time()
        if not is_local(req.url) and req.url not in rec["external"]: rec["external"].append(req.url)

    def on_console(msg):
        if msg.type == "error":
            loc = msg.location or {}
            rec["console"].append(f"{msg.text} @ {loc.get('url', '')}:{loc.get('lineNumber', '')}")

    def on_response(resp):
        if resp.status >= 400: rec["bad_responses"].append(f"{resp.status} {resp.url}")

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda err: rec["page_errors"].append(str(err)))
    page.on("response", on_response)
    page.on("requestfailed", lambda req: rec["failed"].append(f"{req.url} ({req.failure})"))


@pytest.fixture(scope="session")
def visits(server, site):
    "Open every page once; record errors, requests and what got drawn."
    exe = need_browser()
    from playwright.sync_api import sync_playwright
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                   if not p.relative_to(site).parts[0] == "assets")
    assert pages, "the site has no pages"
    results = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS,
                                     timeout=60_000)
        try:
            # one context (shared HTTP cache: plotly.js and MathJax load once), a page per visit
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
            ctx.set_default_timeout(PAGE_TIMEOUT_MS)
            current = {}
            ctx.route("**/*", _router(current))
            for rel in pages:
                rec = dict(console=[], page_errors=[], external=[], bad_responses=[], failed=[],
                           requests=0, last_request=time.time())
                current.clear(); current.update(rec=rec)
                page = ctx.new_page()
                _listen(page, rec)
                t = time.time()
                try:
                    page.goto(f"{server}/{rel}", wait_until="load", timeout=PAGE_TIMEOUT_MS)
                    try: page.wait_for_load_state("networkidle", timeout=30_000)
                    except Exception: pass  # measured below anyway
                    rec.update(page.evaluate(_SETTLE_JS, 30_000))
                    # what got drawn may fetch more (e.g. widget icon fonts): wait for 1 s of quiet
                    quiet_until = time.time() + 15
                    while time.time() - rec["last_request"] < 1.0 and time.time() < quiet_until:
                        page.wait_for_timeout(200)
                except Exception as e:  # keep going: report every page
                    rec["page_errors"].append(f"navigation/evaluation failed: {e!r}"[:500])
                rec["seconds"] = round(time.time() - t, 1)
                results[rel] = rec
                page.close()
            ctx.close()
        finally:
            browser.close()
    return results


def _report(visits, key):
    return {p: r[key] for p, r in visits.items() if r[key]}


def test_every_notebook_has_a_page(site):
    "Each notebook in nbs/ (not _*/.*) has a page: a stale or partial _site fails here."
    import json
    nbs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "nbs").rglob("*.ipynb")
                 if not any(x.startswith(("_", ".")) for x in p.relative_to(ROOT / "nbs").parts))
    manifest = {m["src"]: m["out"] for m in json.loads((site / "assets" / "pages.json").read_text())}
    missing = [n for n in nbs if n not in manifest or not (site / manifest[n]).exists()]
    assert not missing, f"notebooks without a page (rebuild with python tools/build_site.py): {missing}"
    assert (site / "index.html").exists()


def test_no_external_requests(visits):
    assert not _report(visits, "external"), f"requests leaving 127.0.0.1: {_report(visits, 'external')}"


def test_no_console_or_page_errors(visits):
    errs = {p: r["console"] + r["page_errors"] for p, r in visits.items() if r["console"] or r["page_errors"]}
    assert not errs, f"errors in the browser: {errs}"


def test_no_broken_local_files(visits):
    bad = {p: r["bad_responses"] + [f for f in r["failed"] if "127.0.0.1" in f]
           for p, r in visits.items() if r["bad_responses"] or any("127.0.0.1" in f for f in r["failed"])}
    assert not bad, f"missing or failed local files: {bad}"


def test_pages_settle(visits):
    slow = {p: r.get("ms") for p, r in visits.items() if not r.get("settled")}
    assert not slow, f"pages whose plots/widgets/maths did not finish: {slow}"


def test_plotly_figures_render(visits):
    assert all(r.get("plotly_global") == "object" for r in visits.values()), \
        "the shared plotly.min.js did not define window.Plotly on every page"
    assert sum(r.get("plots_drawn", 0) for r in visits.values()) >= 1, \
        f"no page has a drawn plotly figure: { {p: r.get('plots') for p, r in visits.items()} }"
    undrawn = {p: (r.get("plots_drawn"), r.get("plots")) for p, r in visits.items()
               if r.get("plots_drawn", 0) < r.get("plots", 0)}
    assert not undrawn, f"plotly figures not drawn (drawn, total): {undrawn}"


def test_widgets_render(visits):
    undrawn = {p: r.get("widget_views") for p, r in visits.items()
               if r.get("widget_views") and not r.get("widgets_drawn")}
    assert not undrawn, f"saved widget views not rendered: {undrawn}"


def test_latex_typeset(visits):
    assert all(r.get("mathjax") for r in visits.values()), "MathJax did not load on every page"
    raw = {p: r.get("math_left") for p, r in visits.items() if r.get("math_left")}
    assert not raw, f"pages with $...$ left untypeset: {raw}"
    plots = {p: r.get("plot_math_left") for p, r in visits.items() if r.get("plot_math_left")}
    assert not plots, f"plotly figures with $...$ left untypeset: {plots}"
