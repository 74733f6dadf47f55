"""The offline website (tools/build_site.py) in headless Chromium.

Builds `_site/` once per session (reused when it is newer than the notebooks, the package and
the builder, or when VAE_BOOK_SITE_BUILT=1; VAE_BOOK_SITE_BUILT=0 forces a build), serves it on
127.0.0.1, opens every page and checks: no console errors, no page errors, no request that
leaves 127.0.0.1, no broken local file, plotly figures drawn, saved widgets rendered,
LaTeX typeset. Skips without playwright/Chromium unless VAE_BOOK_REQUIRE_BROWSER=1.
"""
import re, time
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


WIDTHS = (390, 1280)
# What sticks out sideways: the page itself (horizontal scrolling), and prose blocks wider than
# the viewport (figures and code may scroll inside their own boxes, prose may not).
_OVERFLOW_JS = """() => {
  const W = document.documentElement.clientWidth, out = [];
  if (document.documentElement.scrollWidth > W + 1) out.push('page scrolls: ' + document.documentElement.scrollWidth + ' > ' + W);
  document.querySelectorAll('.jp-MarkdownCell p, .jp-MarkdownCell li, .book-title, .book-pager').forEach(e => {
    const r = e.getBoundingClientRect();
    if (r.width && (r.right > W + 1 || r.left < -1)) out.push(e.tagName + ': ' + (e.textContent || '').slice(0, 60));
  });
  return out.slice(0, 5);
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
                    for w in WIDTHS:  # the same page, resized: phone and laptop
                        page.set_viewport_size({"width": w, "height": 900})
                        page.wait_for_timeout(150)
                        rec[f"overflow_{w}"] = page.evaluate(_OVERFLOW_JS)
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
    assert all(r.get("plotly_global") == "object" for r in visits.values() if r.get("plots")), \
        "the shared plotly.min.js did not define window.Plotly on every page with figures"
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


def test_no_sideways_scrolling_of_prose(visits):
    "At 390 px (a phone) and 1280 px (a laptop) no page scrolls sideways and no prose sticks out"
    bad = {(p, w): r.get(f"overflow_{w}") for p, r in visits.items() for w in WIDTHS
           if r.get(f"overflow_{w}")}
    assert not bad, f"content wider than the viewport: {bad}"
    assert all(f"overflow_{w}" in r for r in visits.values() for w in WIDTHS)


# ------------------------------------------------------------------ without a browser
def _ids_and_links(html_text):
    from html.parser import HTMLParser

    class P(HTMLParser):
        ids, links = set(), []
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if a.get("id"): self.ids.add(a["id"])
            if tag == "a" and a.get("name"): self.ids.add(a["name"])
            for k in ("href", "src"):
                if a.get(k) and (tag != "link" or k == "href"): self.links.append(a[k])
    p = P(); p.ids, p.links = set(), []
    p.feed(html_text)
    return p.ids, p.links


def test_internal_links_and_anchors(site):
    "Every local href/src of every page names a file of the site, and every #anchor an id on its page"
    from urllib.parse import unquote, urlsplit
    pages = {p: p.read_text(encoding="utf-8") for p in site.rglob("*.html")
             if p.relative_to(site).parts[0] != "assets"}
    parsed = {p: _ids_and_links(t) for p, t in pages.items()}
    broken, n = [], 0
    for page, (ids, links) in parsed.items():
        for href in links:
            u = urlsplit(href)
            if u.scheme or u.netloc or href.startswith(("data:", "javascript:", "mailto:")): continue
            n += 1
            target = (page.parent / unquote(u.path)).resolve() if u.path else page
            if not target.exists(): broken.append(f"{page.name}: {href} (no file)"); continue
            if u.fragment and target.suffix == ".html":
                tids = parsed[target][0] if target in parsed else _ids_and_links(target.read_text())[0]
                if unquote(u.fragment) not in tids: broken.append(f"{page.name}: {href} (no anchor)")
    assert n > 100, f"only {n} local links found: is the site complete?"
    assert not broken, f"{len(broken)} broken local links: {broken[:20]}"


def test_no_directives_rendered(site):
    "nbdev directives (`#| export` over a markdown cell) never show as text on a page"
    import re
    shown = {}
    for p in site.rglob("*.html"):
        if p.relative_to(site).parts[0] == "assets": continue
        body = re.sub(r"<(script|style)\b.*?</\1>", "", p.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r"<[^>]+>", " ", body)
        hits = re.findall(r"(?:^|\s)#?\|\s*(?:export|hide|exporti|default_exp)\b[^\n]{0,30}", text)
        if hits: shown[p.name] = hits[:3]
    assert not shown, f"directives rendered as text: {shown}"


def test_quarto_configs():
    "The Quarto route's configs hang together (Quarto itself cannot run here)"
    import yaml
    root = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    nbs = yaml.safe_load((ROOT / "nbs" / "_quarto.yml").read_text())
    side = yaml.safe_load((ROOT / "nbs" / "sidebar.yml").read_text())
    for name, cfg in (("_quarto.yml", root), ("nbs/_quarto.yml", nbs)):
        assert cfg["project"]["type"] == "website", name
        heads = "".join(h.get("text", "") for h in cfg["format"]["html"].get("include-in-header", []))
        srcs = re.findall(r'src="([^"]+)"', heads)
        assert srcs, f"{name}: the header loads no scripts"
        assert not [s for s in srcs if s.startswith("/") or "://" in s], \
            f"{name}: absolute or remote script paths break a site served under a sub-path: {srcs}"
        for s in srcs:  # copied beside the pages by build_site.py's Quarto route
            assert s in ("plotly.min.js", "book.js"), f"{name}: nothing provides {s}"
    assert set(root["project"]["resources"]) >= {"plotly.min.js", "book.js"}
    assert root["project"]["render"] == ["_proc/*.ipynb"] and root["execute"]["enabled"] is False
    assert "sidebar.yml" in nbs["metadata-files"] and "nbdev.yml" in nbs["metadata-files"]
    assert (ROOT / "tools" / "site" / "assets" / "book.js").exists()
    listed = []
    def walk(items):
        for it in items or []:
            if isinstance(it, str): listed.append(it)
            elif isinstance(it, dict): walk(it.get("contents")); it.get("href") and listed.append(it["href"])
    walk(side["website"]["sidebar"]["contents"])
    missing = [n for n in listed if not (ROOT / "nbs" / n).exists()]
    assert not missing, f"sidebar.yml lists notebooks that do not exist: {missing}"
    assert len(listed) == len(set(listed)), "sidebar.yml lists a notebook twice"
