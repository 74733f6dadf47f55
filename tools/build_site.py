#!/usr/bin/env python3
"""Build the vae-book website.

    python tools/build_site.py            # Quarto if installed (-> _docs/), else offline (-> _site/)
    python tools/build_site.py --offline  # always the offline route (no Quarto needed)
    python tools/build_site.py --quarto   # always nbdev-docs (fails without Quarto)

Offline route (no Quarto): `nbdev-proc-nbs`'s processing (show_doc, #| hide, front matter)
into `_proc/`, then one page per notebook from nbconvert's HTML exporter with the Jinja
templates in `tools/site/templates/book/` (book chrome: sidebar in `nbs/sidebar.yml` order,
on-page contents, prev/next). Markdown is rendered by markdown-it-py (CommonMark, with the
mdit-py-plugins for maths, Pandoc-style attributes and `:::` blocks); CSS and JS are the files
in `tools/site/assets/`. Saved plotly figures (plotly JSON) are drawn by one shared
plotly.min.js; `vae_book.web` live decoders get their weights exported from the shipped
checkpoints into `assets/decoders/`. The pages make no network requests. The JS packages
come from `npm pack` once, into `.cache/site-assets/`.
"""
from __future__ import annotations

import argparse, json, os, re, shutil, subprocess, sys, tarfile, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
SITE_SRC = ROOT / "tools" / "site"  # templates/ and assets/ of the offline site
PLOTLY_MIME = "application/vnd.plotly.v1+json"
LIVE_MIME = "application/vnd.vae-book.live+json"  # vae_book.web.LIVE_MIME

# Exact versions, so the site is reproducible. html-manager 1.x is the one for ipywidgets 8.
NPM_ASSETS = {
    "requirejs": "2.3.8",
    "@jupyter-widgets/html-manager": "1.0.15",
    # MathJax 3, not nbconvert's default 2: plotly.js >= 3 typesets figure text only with
    # MathJax 3/4 (its SVG output); ipywidgets' MathJax-2 calls get assets/mathjax2-shim.js.
    "mathjax": "3.2.2",
}


def _reexec_in_venv():
    "Run under the project venv when this interpreter lacks nbconvert/nbdev."
    try:
        import markdown_it, mdit_py_plugins, nbconvert, nbdev, nbformat, yaml  # noqa: F401
    except ImportError:
        if VENV_PY.exists() and Path(sys.executable).resolve() != VENV_PY.resolve():
            os.execv(str(VENV_PY), [str(VENV_PY), *sys.argv])
        sys.exit("build_site: nbdev/nbconvert are missing; run `bash tools/setup.sh` first")


def log(msg): print(f"[build_site] {msg}", flush=True)


# ---------------------------------------------------------------------------- assets
def _mathjax_keep(rel: str) -> bool:
    "Keep the tex-svg-full component and what it may load lazily (menu, a11y); ~9 of 24 MB."
    keep = ("LICENSE", "es5/tex-svg-full.js", "es5/ui/", "es5/a11y/", "es5/sre/", "es5/input/tex/",
            "es5/output/svg/", "es5/adaptors/")
    return rel.startswith(keep)


def _html_manager_keep(rel: str) -> bool:
    # embed-amd.js plus the font files it loads relative to itself
    return rel.startswith("dist/") and not rel.endswith((".map", "embed.js", "libembed-amd.js",
                                                        ".txt"))


def _requirejs_keep(rel: str) -> bool: return rel == "require.js"


KEEP = {"requirejs": _requirejs_keep, "@jupyter-widgets/html-manager": _html_manager_keep,
        "mathjax": _mathjax_keep}


def ensure_npm_assets(cache: Path) -> dict[str, Path]:
    "Fetch (once) and unpack the pinned npm packages; returns package name -> folder."
    out = {}
    for name, ver in NPM_ASSETS.items():
        dest = cache / f"{name.replace('/', '__').lstrip('@')}-{ver}"
        out[name] = dest
        if (dest / ".complete").exists(): continue
        npm = shutil.which("npm")
        if not npm:
            sys.exit("build_site: npm is needed once to fetch the site's JS "
                     f"({name}@{ver}); install Node.js/npm (e.g. apt-get install npm)")
        log(f"npm pack {name}@{ver} -> {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        with tempfile.TemporaryDirectory() as td:
            r = subprocess.run([npm, "pack", f"{name}@{ver}", "--pack-destination", td,
                                "--silent"], capture_output=True, text=True, cwd=td)
            tgzs = list(Path(td).glob("*.tgz"))
            if r.returncode or not tgzs:
                sys.exit(f"build_site: `npm pack {name}@{ver}` failed:\n{r.stderr[-2000:]}")
            shutil.rmtree(dest, ignore_errors=True)
            with tarfile.open(tgzs[0]) as tf:
                for m in tf.getmembers():
                    if not m.isfile() or not m.name.startswith("package/"): continue
                    rel = m.name[len("package/"):]
                    if ".." in Path(rel).parts or not KEEP[name](rel): continue
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(m) as src, open(target, "wb") as f: shutil.copyfileobj(src, f)
        (dest / ".complete").write_text(f"{name}@{ver}\n")
    return out


def plotly_js() -> Path:
    import plotly
    p = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not p.exists(): sys.exit(f"build_site: {p} not found (is plotly installed?)")
    return p


def copy_assets(site: Path, npm: dict[str, Path]):
    a = site / "assets"
    a.mkdir(parents=True, exist_ok=True)
    shutil.copy2(npm["requirejs"] / "require.js", a / "require.js")
    shutil.copytree(npm["@jupyter-widgets/html-manager"] / "dist", a / "html-manager",
                    ignore=shutil.ignore_patterns(".complete"))
    shutil.copytree(npm["mathjax"], a / "mathjax", ignore=shutil.ignore_patterns(".complete"))
    shutil.copy2(plotly_js(), a / "plotly.min.js")
    for f in (SITE_SRC / "assets").iterdir():  # book.css, book.js, live-decoder.js, ...
        if f.is_file(): shutil.copy2(f, a / f.name)


# ---------------------------------------------------------------------------- navigation
def _proc_notebooks(proc: Path) -> list[Path]:
    return sorted(p for p in proc.rglob("*.ipynb")
                  if not any(part.startswith(("_", ".")) for part in p.relative_to(proc).parts))


def read_sidebar(nbs: Path) -> list | None:
    "nbs/sidebar.yml as [(section or None, [notebook rel paths])], or None when absent."
    import yaml
    f = nbs / "sidebar.yml"
    if not f.exists(): return None
    data = yaml.safe_load(f.read_text()) or {}
    contents = (data.get("website", {}).get("sidebar", {}) or {}).get("contents", [])
    if isinstance(data.get("website", {}).get("sidebar"), list):  # multiple sidebars
        contents = data["website"]["sidebar"][0].get("contents", [])
    groups: list = [(None, [])]

    def walk(items, into):
        for it in items or []:
            if isinstance(it, str): into.append(it)
            elif isinstance(it, dict) and "section" in it:
                if "href" in it: into.append(it["href"])
                walk(it.get("contents"), into)
            elif isinstance(it, dict) and "href" in it: into.append(it["href"])

    for it in contents or []:
        if isinstance(it, dict) and "section" in it:
            lst = [it["href"]] if "href" in it else []
            walk(it.get("contents"), lst)
            groups.append((str(it["section"]), lst))
        else: walk([it], groups[0][1])
    return [g for g in groups if g[1]]


def default_groups(names: list[str]) -> list:
    index = [n for n in names if Path(n).stem == "index"]
    lib = [n for n in names if Path(n).name.startswith("00") and n not in index]
    rest = [n for n in names if n not in index and n not in lib]
    return [g for g in [(None, index), ("Chapters", rest), ("Library", lib)] if g[1]]


# ---------------------------------------------------------------------------- markdown
_re_directive = re.compile(r"^\s*#\s*\|")  # an nbdev/Quarto cell directive line: `#| export`


def strip_directives(src: str) -> str:
    "Drop the leading `#| ...` directive lines of a cell (nbdev keeps them in markdown cells)"
    lines = src.split("\n")
    while lines and _re_directive.match(lines[0]): lines.pop(0)
    return "\n".join(lines)


def slugify(text: str) -> str:
    "Pandoc's (and so Quarto's) heading identifier: lower case, spaces to hyphens, punctuation out"
    s = "".join(ch for ch in text.lower() if ch.isalnum() or ch in "_-. " or ch.isspace())
    s = "-".join(s.split())
    while s and not s[0].isalpha(): s = s[1:]  # everything up to the first letter goes
    return s or "section"


def _pygments(code: str, lang: str, attrs) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound
    try: lexer = get_lexer_by_name(lang or "text")
    except ClassNotFound: lexer = get_lexer_by_name("text")
    return f'<pre class="highlight"><code>{highlight(code, lexer, HtmlFormatter(nowrap=True))}</code></pre>\n'


class MarkdownRenderer:
    """CommonMark (markdown-it-py) with the bits notebooks and nbdev use: `$`/`$$` maths left for
    MathJax, tables, Pandoc-style `{#id .class key=value}` attributes and `::: {.callout-note}`
    blocks (nbdev's show_doc output), heading ids (Pandoc's rule, unique on the page) with a `¶`
    link, and links to notebooks or to the published docs rewritten to the site's pages.
    `env` is one page's state: its headings (for the contents column) and the ids in use."""

    def __init__(self, link_map):
        from markdown_it import MarkdownIt
        from mdit_py_plugins.attrs import attrs_block_plugin, attrs_plugin
        from mdit_py_plugins.container import container_plugin
        from mdit_py_plugins.dollarmath import dollarmath_plugin
        self.link_map = link_map  # href -> href (or None to keep)
        md = MarkdownIt("commonmark", {"html": True, "highlight": _pygments})
        md.enable(["table", "strikethrough"])
        md.use(dollarmath_plugin, allow_labels=False, allow_space=False, allow_digits=False,
               double_inline=True, renderer=self._math)
        # `$$` may open a line inside a paragraph (Pandoc's display maths is inline): let the
        # plugin's block rule interrupt paragraphs and lists, or a line of TeX starting with
        # `- ` would start a list
        from mdit_py_plugins.dollarmath.index import math_block_dollar
        block = math_block_dollar(False, None, True)

        def math_block_in_paragraph(state, start, end, silent):
            if silent:  # asked "does a block start here?" while a paragraph runs: answer only
                pos = state.bMarks[start] + state.tShift[start]
                return state.src.startswith("$$", pos) and not state.sCount[start] - state.blkIndent >= 4
            return block(state, start, end, silent)
        md.block.ruler.before("fence", "math_block_in_paragraph", math_block_in_paragraph,
                              {"alt": ["paragraph", "reference", "blockquote", "list"]})
        md.use(attrs_plugin, spans=True).use(attrs_block_plugin)
        md.use(container_plugin, name="div", marker=":", validate=lambda *a: True,
               render=self._div)
        md.core.ruler.push("book_headings", self._headings)
        md.add_render_rule("link_open", self._link_rule())
        self.md = md

    @staticmethod
    def _math(content: str, opts: dict) -> str:
        import html
        tex = html.escape(content)
        return f"\\[{tex}\\]" if opts.get("display_mode") else f"\\({tex}\\)"

    @staticmethod
    def _div(renderer, tokens, idx, options, env):
        "`::: {.callout-note title=\"...\"}` -> <div class=\"callout callout-note\">"
        import html, shlex
        tok = tokens[idx]
        if tok.nesting != 1: return "</div>\n"
        spec = tok.info.strip().lstrip(":").strip().strip("{}").strip()
        try: parts = shlex.split(spec)
        except ValueError: parts = spec.split()
        classes = [p[1:] for p in parts if p.startswith(".")] or [p for p in parts[:1] if "=" not in p]
        title = next((p.split("=", 1)[1] for p in parts if p.startswith("title=")), None)
        callout = any(c.startswith("callout") for c in classes)
        if callout: classes.insert(0, "callout")
        out = f'<div class="{html.escape(" ".join(classes))}">\n'
        if callout:
            kind = next(c for c in classes if c.startswith("callout-") or c == "callout")
            label = title or kind.replace("callout-", "").replace("callout", "note").capitalize()
            out += f'<div class="callout-title">{html.escape(label)}</div>\n'
        return out

    @staticmethod
    def _headings(state):
        from markdown_it.token import Token
        env = state.env
        used, found = env.setdefault("ids", set()), env.setdefault("headings", Shared())
        for i, tok in enumerate(state.tokens):
            if tok.type != "heading_open": continue
            inline = state.tokens[i + 1]
            text = "".join(f"${c.content}$" if c.type.startswith("math") else c.content
                           for c in inline.children or [] if c.type in
                           ("text", "code_inline", "math_inline", "math_inline_double"))
            hid = tok.attrGet("id") or slugify(text)
            base, n = hid, 1
            while hid in used: hid, n = f"{base}-{n}", n + 1
            used.add(hid); tok.attrSet("id", hid)
            found.append(dict(level=int(tok.tag[1]), id=hid, text=text.strip()))
            link = Token("html_inline", "", 0)
            link.content = f'<a class="anchor-link" href="#{hid}">¶</a>'
            inline.children = [*(inline.children or []), link]

    def _link_rule(self):
        link_map = self.link_map

        def link_open(renderer, tokens, idx, options, env):
            tok = tokens[idx]
            new = link_map(tok.attrGet("href") or "")
            if new is not None: tok.attrSet("href", new)
            return renderer.renderToken(tokens, idx, options, env)
        return link_open

    def render(self, src: str, env: dict) -> str:
        return self.md.render(src, env)


def make_link_map(page: dict, src2out: dict, doc_url: str, prefix: str):
    "A function from a link's href to the site's href: notebooks -> pages, the doc host -> relative"
    from urllib.parse import urlsplit

    def link_map(href: str):
        if doc_url.strip("/") and href.startswith(doc_url): return prefix + href[len(doc_url):]
        u = urlsplit(href)
        if u.scheme or u.netloc or not u.path.endswith(".ipynb"): return None
        target = os.path.normpath(str(Path(page["src"]).parent / u.path))
        out = src2out.get(target, u.path[:-len(".ipynb")] + ".html")
        return prefix + out + (f"#{u.fragment}" if u.fragment else "")
    return link_map


class Shared(list):
    "A list nbconvert's deep copies of `resources` leave shared: the headings, filled while cells render"
    def __deepcopy__(self, memo): return self


def book_exporter(renderer: MarkdownRenderer, env: dict, prefix: str):
    "nbconvert's HTMLExporter with the book template, markdown-it for markdown, plotly JSON first"
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    from jinja2 import pass_context

    class BookExporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):
            return renderer.render(source, env)

    cfg = Config()
    # plotly's JSON and the live decoder's configuration come first (rendered by the template's
    # data_other block); then nbconvert's usual order
    cfg.NbConvertBase.display_data_priority = [
        LIVE_MIME, PLOTLY_MIME, "application/vnd.jupyter.widget-view+json", "text/html",
        "application/pdf", "text/latex", "image/svg+xml", "image/png", "image/jpeg",
        "text/markdown", "text/plain"]
    return BookExporter(
        config=cfg, template_name="book", extra_template_basedirs=[str(SITE_SRC / "templates")],
        exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True,
        require_js_url=f"{prefix}assets/require.js",
        widget_renderer_url=f"{prefix}assets/html-manager/embed-amd.js")


# ---------------------------------------------------------------------------- notebook clean-up
_re_opt = re.compile(r"^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")


def clean_notebook(nb, widget_ids: set[str]):
    "Apply Quarto cell options nbconvert does not know; drop directives and noise. Returns front matter."
    import yaml
    fm, cells = {}, []
    for c in nb.cells:
        c.metadata.pop("execution", None)
        if c.cell_type == "raw" and not fm and c.source.lstrip().startswith("---"):
            try: fm = yaml.safe_load(c.source.strip().strip("-")) or {}
            except yaml.YAMLError: fm = {}
            continue
        if c.cell_type == "markdown":
            c.source = strip_directives(c.source)
            if not re.sub(r"<!--.*?-->", "", c.source, flags=re.S).strip(): continue
        if c.cell_type == "code":
            lines, opts = c.source.split("\n"), {}
            while lines and _re_opt.match(lines[0]):
                k, v = _re_opt.match(lines.pop(0)).groups()
                opts[k.lower()] = v.strip().strip("'\"").lower()
            c.source = "\n".join(lines).strip("\n")
            if opts.get("include") == "false": continue
            if opts.get("output") == "false": c.outputs = []
            if opts.get("echo") == "false" or not c.source.strip():
                c.metadata.setdefault("transient", {})["remove_source"] = True
            new_outs = []
            for o in c.outputs:
                d = o.get("data", {})
                wv = d.get("application/vnd.jupyter.widget-view+json")
                if wv is not None and wv.get("model_id") not in widget_ids:
                    d.pop("application/vnd.jupyter.widget-view+json")  # no saved state: text repr
                    if not d: continue
                new_outs.append(o)
            c.outputs = new_outs
            if c.metadata.get("transient", {}).get("remove_source") and not c.outputs: continue
        cells.append(c)
    nb.cells = cells
    return fm


def load_proc_nb(path: Path):
    "Read an `_proc` notebook, fixing what nbconvert rejects (float execution metadata, list sources)."
    import nbformat
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.get("metadata", {}).pop("execution", None)
    for c in raw.get("cells", []):
        c.get("metadata", {}).pop("execution", None)
        if isinstance(c.get("source"), list): c["source"] = "".join(c["source"])
        c.setdefault("metadata", {})
    return nbformat.reads(json.dumps(raw), as_version=4)


def outputs_of(nb, mime: str) -> list:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if mime in o.get("data", {})]


# ---------------------------------------------------------------------------- live decoders
def export_decoders(nbs_by_src: dict, assets: Path) -> dict[str, list[str]]:
    """Weights of every model a live decoder output names, from the shipped checkpoints, into
    `assets/decoders/<name>.js` (once per model). Returns page src -> model names."""
    used = {src: sorted({cfg["model"] for cfg in outputs_of(nb, LIVE_MIME)})
            for src, nb in nbs_by_src.items()}
    names = sorted({n for ns in used.values() for n in ns})
    if not names: return used
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    from vae_book.pretrained import load_pretrained
    from vae_book.web import decoder_spec, spec_fingerprint, write_decoder_js
    prints = {}
    for name in names:
        model = load_pretrained(name)
        write_decoder_js(model, assets / "decoders", name)
        prints[name] = spec_fingerprint(decoder_spec(model))
    for src, nb in nbs_by_src.items():
        for cfg in outputs_of(nb, LIVE_MIME):
            if cfg.get("fingerprint") != prints[cfg["model"]]:
                log(f"WARNING: {src}: the live decoder's saved codes come from other {cfg['model']} "
                    "weights than the shipped ones; re-run the notebook")
    log(f"live decoders: {', '.join(names)} -> assets/decoders/")
    return used


# ---------------------------------------------------------------------------- build
def run_proc_nbs(n_workers: int):
    "nbdev-proc-nbs without its Quarto install attempt (which would try sudo + a download)."
    from nbdev.serve import proc_nbs
    os.chdir(ROOT)
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    return proc_nbs(n_workers=n_workers)


def page_resources(page, pages, groups, site_title, prefix, env, has) -> dict:
    "What the templates' chrome needs for one page (see tools/site/templates/book/chrome.html.j2)"
    by_src = {p["src"]: p for p in pages}
    gl = [(name, [by_src[s] for s in srcs if s in by_src]) for name, srcs in groups]
    order = [p for _, ps in gl for p in ps]
    i = next((k for k, p in enumerate(order) if p is page), None)
    return dict(
        prefix=prefix, page=page, site_title=site_title, groups=gl,
        index=next((p for p in pages if Path(p["out"]).stem == "index"), pages[0]),
        section_firsts=[(name, ps[0]) for name, ps in gl if name and ps],
        prev=order[i - 1] if i else None,
        next=order[i + 1] if i is not None and i + 1 < len(order) else None,
        headings=env["headings"], **has)


def build_offline(out: Path, n_workers: int, skip_proc: bool = False) -> Path:
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    nbs, proc = Path(cfg.nbs_path), ROOT / "_proc"
    t = time.time()
    npm = ensure_npm_assets(ROOT / ".cache" / "site-assets")
    log(f"assets ready ({time.time() - t:.1f} s)")

    t = time.time()
    if not skip_proc: run_proc_nbs(n_workers)
    log(f"nbdev proc_nbs -> _proc/ ({time.time() - t:.1f} s)")

    t = time.time()
    nb_paths = _proc_notebooks(proc)
    srcs = {str(p.relative_to(proc)): p for p in nb_paths
            if (nbs / p.relative_to(proc)).exists()}  # ignore stale _proc leftovers
    if not srcs: sys.exit(f"build_site: no notebooks found in {nbs}")
    groups = read_sidebar(nbs)
    if groups is None: groups = default_groups(sorted(srcs))
    listed = {s for _, ss in groups for s in ss}
    for s in sorted(s for s in listed if s not in srcs):
        log(f"WARNING: sidebar.yml lists {s}, which is not a notebook in {nbs.name}/")
    unlisted = sorted(s for s in srcs if s not in listed)
    if unlisted: log(f"note: not in sidebar.yml (built, not listed): {', '.join(unlisted)}")

    pages, nbs_by_src = [], {}
    for src, p in srcs.items():
        nb = load_proc_nb(p)
        wstate = (nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
                  .get("state", {}))
        if not wstate: nb.metadata.pop("widgets", None)  # don't load the widget manager for nothing
        fm = clean_notebook(nb, set(wstate))
        out_name = str(Path(src).parent / fm.get("output-file", Path(src).stem + ".html"))
        out_name = out_name[2:] if out_name.startswith("./") else out_name
        title = str(fm.get("title") or Path(src).stem)
        if Path(src).stem == "index" and not fm.get("title"): title = cfg.get("title", "Home")
        pages.append(dict(src=src, out=out_name, title=title, description=fm.get("description", "")))
        nbs_by_src[src] = nb
    outs = [p["out"] for p in pages]
    for p in pages:
        if outs.count(p["out"]) > 1:
            p["out"] = str(Path(p["src"]).with_suffix(".html"))
            log(f"WARNING: two notebooks map to one page; using {p['out']} for {p['src']}")
    src2out = {p["src"]: p["out"] for p in pages}

    doc_url = (str(cfg.get("doc_host", "")).rstrip("/") + "/" + str(cfg.get("doc_baseurl", "")).strip("/")).rstrip("/") + "/"
    site_title = str(cfg.get("title", "") or cfg.get("lib_name", "Book"))

    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    copy_assets(out, npm)
    live = export_decoders(nbs_by_src, out / "assets")

    for page in pages:
        prefix = "../" * (len(Path(page["out"]).parts) - 1)
        nb = nbs_by_src[page["src"]]
        env: dict = {"headings": Shared(), "ids": set()}
        renderer = MarkdownRenderer(make_link_map(page, src2out, doc_url, prefix))
        exporter = book_exporter(renderer, env, prefix)
        nb.metadata["title"] = page["title"] if page["title"] == site_title else f"{page['title']} – {site_title}"
        has = dict(plotly=bool(outputs_of(nb, PLOTLY_MIME)), widgets="widgets" in nb.metadata,
                   live_models=live.get(page["src"], []))
        book = page_resources(page, pages, groups, site_title, prefix, env, has)
        body, _ = exporter.from_notebook_node(
            nb, resources={"book": book, "metadata": {"name": Path(page["src"]).stem,
                                                     "path": str(nbs / Path(page["src"]).parent)}})
        dest = out / page["out"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(body, encoding="utf-8")

    # images and other files referenced from markdown (e.g. nbs/images/x.png)
    for f in nbs.rglob("*"):
        rel = f.relative_to(nbs)
        if (f.is_file() and f.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".pdf", ".csv"}
                and not any(x.startswith((".", "_")) for x in rel.parts)):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out / rel)
    if not (out / "index.html").exists() and pages:
        (out / "index.html").write_text(f'<!doctype html><meta http-equiv="refresh" content="0; url={pages[0]["out"]}">')
    (out / ".nojekyll").write_text("")
    manifest = [dict(src=f"{nbs.name}/{p['src']}", out=p["out"], title=p["title"],
                     live_models=live.get(p["src"], [])) for p in pages]
    (out / "assets" / "pages.json").write_text(json.dumps(manifest, indent=1))
    log(f"rendered {len(pages)} pages -> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} "
        f"({time.time() - t:.1f} s)")
    return out


def plotly_placeholders(proc: Path) -> int:
    """Give each plotly output in `_proc/` (plotly JSON only) an HTML placeholder Quarto keeps:
    a div + the figure in a JSON script tag, drawn by book.js. Returns how many."""
    n = 0
    for p in _proc_notebooks(proc):
        raw = json.loads(p.read_text(encoding="utf-8"))
        changed = False
        for c in raw.get("cells", []):
            for o in c.get("outputs", []) or []:
                d = o.get("data") or {}
                if PLOTLY_MIME not in d or "text/html" in d: continue
                fig = d[PLOTLY_MIME]
                h = (fig.get("layout") or {}).get("height") or 450
                js = json.dumps(fig).replace("</", "<\\/")
                d["text/html"] = (f'<div class="book-plotly"><div class="plotly-graph-div" '
                                  f'style="height:{h}px; width:100%"></div><script type="{PLOTLY_MIME}">'
                                  f'{js}</script></div>')
                changed = True; n += 1
        if changed: p.write_text(json.dumps(raw, indent=1, ensure_ascii=False), encoding="utf-8")
    return n


def build_quarto(n_workers: int) -> Path:
    "nbdev-docs, with plotly placeholders added to _proc/ between processing and rendering"
    from nbdev.config import get_config
    from nbdev.quarto import _fix_quarto_nav, _pre_docs, move, render_quarto
    cfg = get_config(ROOT)
    log("quarto found: nbdev-docs steps (proc_nbs, plotly placeholders, quarto render)")
    cache, cfg, _ = _pre_docs(str(cfg.nbs_path), n_workers=n_workers)
    log(f"plotly placeholders: {plotly_placeholders(Path(cache))}")
    render_quarto(cache, cache / cfg.doc_path.name, n_workers=n_workers)
    shutil.rmtree(cfg.doc_path, ignore_errors=True)
    move(cache / cfg.doc_path.name, cfg.config_path)
    _fix_quarto_nav(cfg.doc_path)
    docs = Path(cfg.doc_path)
    shutil.copy2(plotly_js(), docs / "plotly.min.js")  # nbs/_quarto.yml's header loads both
    shutil.copy2(SITE_SRC / "assets" / "book.js", docs / "book.js")
    return docs


def page_weights(site: Path) -> list[dict]:
    "KB each page loads: its HTML plus the local scripts and stylesheets it names (each counted once)"
    from html.parser import HTMLParser

    class Refs(HTMLParser):
        def __init__(self): super().__init__(); self.refs = []
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "script" and a.get("src"): self.refs.append(a["src"])
            if tag == "link" and a.get("rel") == "stylesheet" and a.get("href"): self.refs.append(a["href"])
    rows = []
    for page in sorted(p for p in site.rglob("*.html") if p.relative_to(site).parts[0] != "assets"):
        r = Refs(); r.feed(page.read_text(encoding="utf-8"))
        files = {(page.parent / u).resolve() for u in r.refs if "://" not in u}
        if any(u.endswith("require.js") for u in r.refs):  # the widget manager, added on load
            files.add((site / "assets" / "html-manager" / "embed-amd.js").resolve())
        kb = lambda fs: sum(f.stat().st_size for f in fs if f.exists())/1024
        rows.append(dict(page=page.relative_to(site).as_posix(), html_kb=page.stat().st_size/1024,
                         scripts_kb=kb(files), plotly="plotly.min.js" in " ".join(r.refs),
                         decoders=[f.stem for f in files if f.parent.name == "decoders"]))
    return rows


def print_page_weights(site: Path):
    print("| page | HTML (KB) | + scripts/CSS (KB) | total (KB) | plotly.js | decoders |")
    print("|---|---:|---:|---:|:-:|---|")
    for r in page_weights(site):
        print(f"| {r['page']} | {r['html_kb']:.0f} | {r['scripts_kb']:.0f} | "
              f"{r['html_kb'] + r['scripts_kb']:.0f} | {'yes' if r['plotly'] else ''} | "
              f"{', '.join(r['decoders'])} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--offline", action="store_true", help="offline nbconvert route even if Quarto exists")
    g.add_argument("--quarto", action="store_true", help="require Quarto (nbdev-docs)")
    ap.add_argument("--out", default=str(ROOT / "_site"), help="offline output folder (default _site)")
    ap.add_argument("--n-workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--skip-proc", action="store_true", help="reuse _proc/ as it is")
    ap.add_argument("--page-weights", action="store_true",
                    help="print a markdown table of KB per page of the built offline site, then stop")
    a = ap.parse_args(argv)
    if a.page_weights: return print_page_weights(Path(a.out).resolve())
    t0 = time.time()
    if a.quarto or (not a.offline and shutil.which("quarto")):
        where = build_quarto(a.n_workers)
    else:
        where = build_offline(Path(a.out).resolve(), a.n_workers, a.skip_proc)
    log(f"done in {time.time() - t0:.1f} s: {where}/index.html  "
        f"(view: python -m http.server -d {os.path.relpath(where)} 8000 --bind 127.0.0.1)")


if __name__ == "__main__":
    _reexec_in_venv()
    main()
