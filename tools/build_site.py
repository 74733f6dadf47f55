#!/usr/bin/env python3
"""Build the vae-book website.

    python tools/build_site.py            # Quarto if installed (-> _docs/), else offline (-> _site/)
    python tools/build_site.py --offline  # always the offline route (no Quarto needed)
    python tools/build_site.py --quarto   # always nbdev-docs (fails without Quarto)

Offline route (no Quarto): `nbdev-proc-nbs`'s processing (show_doc, #| hide, front matter)
into `_proc/`, then one nbconvert HTML page per notebook with a book layout (sidebar in
`nbs/sidebar.yml` order, on-page contents, prev/next), and every script served from the
site itself: require.js, the Jupyter widgets html-manager, MathJax 3 and one shared
plotly.min.js in each page's <head> (notebook plotly outputs are
`pio.to_html(include_plotlyjs=False)` and expect a global `Plotly`). The pages make no
network requests. The JS packages come from `npm pack` once, into `.cache/site-assets/`.
"""
from __future__ import annotations

import argparse, html, json, os, re, shutil, subprocess, sys, tarfile, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"

# Exact versions, so the site is reproducible. html-manager 1.x is the one for ipywidgets 8.
NPM_ASSETS = {
    "requirejs": "2.3.8",
    "@jupyter-widgets/html-manager": "1.0.15",
    # MathJax 3, not nbconvert's default 2: plotly.js >= 3 typesets figure text only with
    # MathJax 3/4 (its SVG output); ipywidgets' MathJax-2 calls get a small shim below.
    "mathjax": "3.2.2",
}


def _reexec_in_venv():
    "Run under the project venv when this interpreter lacks nbconvert/nbdev."
    try:
        import nbconvert, nbdev, nbformat, yaml  # noqa: F401
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
    (a / "book.css").write_text(BOOK_CSS)
    (a / "book.js").write_text(BOOK_JS)


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


# ---------------------------------------------------------------------------- notebook clean-up
_re_dir = re.compile(r"^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
_re_attr = re.compile(r'(\.[\w-]+)|(#[\w-]+)|([\w-]+)=("[^"]*"|\'[^\']*\'|[^\s}]+)')
# Pandoc attribute lists look like {.cls}, {#id} or {key=value ...}; anything else (e.g. TeX
# braces after a bracket) is left alone.
_ATTRS = r"\{((?:[.#][\w-]|[\w-]+=)[^}\n]*)\}"
_re_link_attr = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)" + _ATTRS)
_re_span_attr = re.compile(r"(?<![\]!\\])\[([^\]\n]+)\]" + _ATTRS)
_re_head_attr = re.compile(r"^(#{1,6}\s.*?)\s*" + _ATTRS + r"\s*$", re.M)
_re_div_open = re.compile(r"^:::+\s*\{?([^}]*)\}?\s*$")
_re_div_close = re.compile(r"^:::+\s*$")


def _attrs(s: str) -> str:
    "Pandoc attribute list `{.cls #id k=v}` -> HTML attributes."
    classes, out = [], []
    for cls, ident, k, v in _re_attr.findall(s):
        if cls: classes.append(cls[1:])
        elif ident: out.append(f'id="{html.escape(ident[1:])}"')
        elif k:
            v = v[1:-1] if v[:1] in "\"'" else v
            if k == "style" and "float:right" in v.replace(" ", ""): classes.append("doc-source-link"); continue
            out.append(f'{k}="{html.escape(v)}"')
    if classes: out.insert(0, f'class="{" ".join(classes)}"')
    return (" " + " ".join(out)) if out else ""


def clean_markdown(md: str) -> str:
    "Turn Quarto/Pandoc-only markdown into plain CommonMark + HTML that nbconvert renders."
    md = _re_link_attr.sub(lambda m: f'<a href="{html.escape(m[2])}"{_attrs(m[3])}>{m[1]}</a>', md)
    md = _re_span_attr.sub(lambda m: f'<span{_attrs(m[2])}>{m[1]}</span>', md)
    md = _re_head_attr.sub(r"\1", md)
    lines, out, depth = md.split("\n"), [], 0
    in_code = False
    for ln in lines:
        if ln.lstrip().startswith(("```", "~~~")): in_code = not in_code
        if not in_code and depth and _re_div_close.match(ln):
            out += ["", "</div>", ""]; depth -= 1; continue
        m = None if in_code else _re_div_open.match(ln)
        if m and m[1].strip():
            spec = m[1].strip()
            kind = next((c[1:] for c in spec.split() if c.startswith(".")), spec.split()[0])
            title = re.search(r'title="([^"]*)"', spec)
            classes = [c[1:] for c in spec.split() if c.startswith(".")] or [kind]
            if kind.startswith("callout"): classes.insert(0, "callout")
            out += [f'<div class="{html.escape(" ".join(classes))}">']
            if kind.startswith("callout"):
                label = title[1] if title else kind.replace("callout-", "").capitalize()
                out += [f'<div class="callout-title">{html.escape(label)}</div>']
            out += [""]; depth += 1; continue
        out.append(ln)
    out += ["", "</div>"] * depth
    return "\n".join(out)


def _is_blank_md(src: str) -> bool:
    return not re.sub(r"<!--.*?-->", "", src, flags=re.S).strip()


def clean_notebook(nb, widget_ids: set[str]):
    "Apply Quarto cell options nbconvert does not know; drop noise. Returns front matter."
    import yaml
    fm, cells = {}, []
    for i, c in enumerate(nb.cells):
        c.metadata.pop("execution", None)
        if c.cell_type == "raw" and not fm and c.source.lstrip().startswith("---"):
            try: fm = yaml.safe_load(c.source.strip().strip("-")) or {}
            except yaml.YAMLError: fm = {}
            continue
        if c.cell_type == "markdown":
            if _is_blank_md(c.source): continue
            c.source = clean_markdown(c.source)
        if c.cell_type == "code":
            lines, opts = c.source.split("\n"), {}
            while lines and _re_dir.match(lines[0]):
                k, v = _re_dir.match(lines.pop(0)).groups()
                opts[k.lower()] = v.strip().strip("'\"").lower()
            c.source = "\n".join(lines).strip("\n")
            if opts.get("include") == "false": continue
            if opts.get("output") == "false": c.outputs = []
            if opts.get("echo") == "false" or not c.source.strip():
                c.metadata.setdefault("transient", {})["remove_source"] = True
            new_outs = []
            for o in c.outputs:
                d = o.get("data", {})
                if "text/markdown" in d: d["text/markdown"] = clean_markdown(d["text/markdown"])
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


# ---------------------------------------------------------------------------- page template
TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}
<link rel="icon" href="data:,">
<script src="{{ resources.book.prefix }}assets/plotly.min.js"></script>
{{ super() }}
<script>
/* The widget manager finds its icon fonts next to the AMD module URLs of @jupyter-widgets/*:
   point those at the local copy (default: <page dir>/@jupyter-widgets/, which does not exist). */
require.config({paths: {"@jupyter-widgets": "{{ resources.book.prefix }}assets/html-manager"}});
</script>
{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  options: {ignoreHtmlClass: 'tex2jax_ignore|plotly-graph-div'},
  svg: {fontCache: 'global'}
};
</script>
<script src="{{ resources.book.prefix }}assets/mathjax/es5/tex-svg-full.js"></script>
<script>
/* ipywidgets 8 typesets labels with the MathJax 2 API: map it onto MathJax 3 */
(function () {
  var MJ = window.MathJax;
  if (!MJ || MJ.Hub) return;
  MJ.Hub = {Queue: function () {
    Array.prototype.forEach.call(arguments, function (a) {
      if (!Array.isArray(a) || a[0] !== 'Typeset' || !a[2]) return;
      (MJ.startup && MJ.startup.promise || Promise.resolve()).then(function () {
        return MJ.typesetPromise && MJ.typesetPromise([a[2]]);
      }).catch(function (e) { console.warn('MathJax', e); });
    });
  }};
})();
</script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<link rel="stylesheet" href="{{ resources.book.prefix }}assets/book.css">
<script defer src="{{ resources.book.prefix }}assets/book.js"></script>
{%- endblock html_head_css -%}
{%- block body_header -%}
<body class="jp-Notebook book" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.book.topbar }}
<div class="book-layout">
{{ resources.book.sidebar }}
<main class="book-main">
{{ resources.book.header }}
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.book.pager }}
</main>
<!--BOOK-TOC-->
</div>
</body>
{% endblock body_footer %}
"""

BOOK_JS = r"""// vae-book site helpers: highlight the on-page contents entry in view.
(function () {
  var links = Array.prototype.slice.call(document.querySelectorAll('.book-toc a'));
  if (!links.length || !('IntersectionObserver' in window)) return;
  var byId = {};
  links.forEach(function (a) { byId[decodeURIComponent(a.hash.slice(1))] = a; });
  var obs = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (!e.isIntersecting) return;
      links.forEach(function (a) { a.classList.remove('active'); });
      var a = byId[e.target.id]; if (a) a.classList.add('active');
    });
  }, {rootMargin: '0px 0px -70% 0px'});
  Object.keys(byId).forEach(function (id) { var h = document.getElementById(id); if (h) obs.observe(h); });
})();
"""

BOOK_CSS = r"""/* vae-book offline site: a light book layout over nbconvert's lab template */
:root {
  --book-accent: #2780e3; --book-text: #212529; --book-muted: #6c757d;
  --book-border: #e5e7eb; --book-side-bg: #f8f9fb; --book-code-bg: #f6f8fa;
  --book-font: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  --book-mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  --jp-content-font-family: var(--book-font); --jp-ui-font-family: var(--book-font);
  --jp-code-font-family: var(--book-mono); --jp-content-font-size1: 16px;
  --jp-content-line-height: 1.65; --jp-code-font-size: 13.5px;
  --jp-cell-editor-background: var(--book-code-bg); --jp-cell-editor-border-color: var(--book-border);
}
html { scroll-padding-top: 4rem; }
body.book { margin: 0; padding: 0; overflow: visible; background: #fff; color: var(--book-text);
  font-family: var(--book-font); }
.book-topbar { position: sticky; top: 0; z-index: 20; display: flex; align-items: center; gap: 1rem;
  height: 3.2rem; padding: 0 1.25rem; background: var(--book-accent); color: #fff;
  box-shadow: 0 1px 3px rgba(0,0,0,.15); }
.book-topbar a { color: #fff; text-decoration: none; }
.book-topbar .book-brand { font-weight: 600; font-size: 1.1rem; letter-spacing: .01em; }
.book-topbar .book-top-links { margin-left: auto; display: flex; gap: 1.1rem; font-size: .92rem; }
.book-topbar .book-top-links a { opacity: .9; } .book-topbar .book-top-links a:hover { opacity: 1; }
.book-menu-toggle { display: none; cursor: pointer; font-size: 1.4rem; line-height: 1; user-select: none; }
#book-menu { display: none; }
.book-layout { display: grid; grid-template-columns: 16.5rem minmax(0, 1fr) 13rem;
  max-width: 92rem; margin: 0 auto; }
.book-sidebar { position: sticky; top: 3.2rem; align-self: start; height: calc(100vh - 3.2rem);
  overflow-y: auto; padding: 1.4rem 1rem 2rem 1.4rem; background: var(--book-side-bg);
  border-right: 1px solid var(--book-border); font-size: .93rem; box-sizing: border-box; }
.book-sidebar .book-section { margin: 1.2rem 0 .35rem; font-size: .74rem; font-weight: 700;
  letter-spacing: .08em; text-transform: uppercase; color: var(--book-muted); }
.book-sidebar ul { list-style: none; margin: 0; padding: 0; }
.book-sidebar li a { display: block; padding: .28rem .6rem; margin: 1px 0; border-radius: 5px;
  color: #343a40; text-decoration: none; line-height: 1.35; }
.book-sidebar li a:hover { background: #e9eef5; }
.book-sidebar li a.active { background: #e3eefc; color: var(--book-accent); font-weight: 600; }
.book-main { min-width: 0; padding: 2rem 2.5rem 4rem; box-sizing: border-box; max-width: 58rem; }
.book-title h1 { font-size: 2.25rem; line-height: 1.2; margin: .2rem 0 .6rem; font-weight: 700; }
.book-title .book-description { font-size: 1.15rem; color: var(--book-muted); margin: 0 0 1.6rem; }
.book-title { border-bottom: 1px solid var(--book-border); margin-bottom: 1.4rem; }
.book-toc { position: sticky; top: 3.2rem; align-self: start; max-height: calc(100vh - 3.2rem);
  overflow-y: auto; padding: 2.2rem 1rem 2rem .5rem; font-size: .85rem; box-sizing: border-box; }
.book-toc .book-toc-title { font-weight: 600; margin-bottom: .5rem; color: var(--book-text); }
.book-toc ul { list-style: none; margin: 0; padding: 0; border-left: 1px solid var(--book-border); }
.book-toc li a { display: block; padding: .18rem .75rem; color: var(--book-muted); text-decoration: none;
  border-left: 2px solid transparent; margin-left: -1px; line-height: 1.35; }
.book-toc li.lvl3 a { padding-left: 1.5rem; font-size: .8rem; }
.book-toc li a:hover, .book-toc li a.active { color: var(--book-accent); border-left-color: var(--book-accent); }
/* cells: no prompts, no collapser, comfortable spacing */
.book-main .jp-Cell { padding: 0; margin: 0 0 .9rem; }
.book-main .jp-InputPrompt, .book-main .jp-OutputPrompt { display: none; }
.book-main .jp-Cell-inputWrapper, .book-main .jp-Cell-outputWrapper { display: block; }
.book-main .jp-InputArea-editor { border: 1px solid var(--book-border); border-radius: 6px;
  background: var(--book-code-bg); }
.book-main .jp-InputArea-editor .highlight { background: transparent; }
.book-main .jp-InputArea-editor pre { padding: .65rem .9rem !important; }
.book-main .jp-InputArea-editor, .book-main .jp-InputArea-editor .highlight { overflow-x: auto; }
.book-main .jp-MarkdownCell .jp-RenderedHTMLCommon { padding-left: 0; padding-right: 0; }
.book-main .jp-OutputArea-output.jp-RenderedMarkdown { padding-left: 0; }
.book-main .jp-OutputArea-output > pre { overflow-x: auto; }
.book-main .jp-OutputArea-output { padding: .3rem 0 0; }
.book-main .jp-OutputArea-output pre { font-size: 13px; }
.book-main .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"] { background: #fff8e6;
  border-left: 3px solid #f0ad4e; padding: .3rem .7rem; }
.book-main .jp-RenderedHTMLCommon { font-size: 16px; line-height: 1.65; padding-right: 0; color: var(--book-text); }
.book-main .jp-RenderedHTMLCommon h2 { font-size: 1.6rem; margin: 2.2rem 0 .8rem; padding-bottom: .3rem;
  border-bottom: 1px solid var(--book-border); }
.book-main .jp-RenderedHTMLCommon h3 { font-size: 1.3rem; margin: 1.6rem 0 .6rem; }
.book-main .jp-RenderedHTMLCommon h1:first-child, .book-main .jp-RenderedHTMLCommon h2:first-child { margin-top: 1.2rem; }
.book-main .jp-RenderedHTMLCommon a { color: var(--book-accent); text-decoration: none; }
.book-main .jp-RenderedHTMLCommon a:hover { text-decoration: underline; }
.book-main .jp-RenderedHTMLCommon a.anchor-link { display: inline; visibility: hidden; margin-left: .3em;
  color: var(--book-muted); font-weight: 400; }
.book-main .jp-RenderedHTMLCommon :is(h1,h2,h3,h4):hover a.anchor-link { visibility: visible; }
.book-main .jp-RenderedHTMLCommon :not(pre) > code { background: #f1f3f5; padding: .1em .35em;
  border-radius: 4px; font-size: .88em; }
.book-main .jp-RenderedHTMLCommon pre { background: var(--book-code-bg); border: 1px solid var(--book-border);
  border-radius: 6px; padding: .65rem .9rem; overflow-x: auto; }
.book-main .jp-RenderedHTMLCommon blockquote { border-left: 4px solid #cfe0f7; margin: 1rem 0;
  padding: .2rem 1rem; color: #495057; background: #f7fafe; }
.book-main .jp-RenderedHTMLCommon table { border-collapse: collapse; margin: 1rem 0; font-size: .92rem; }
.book-main .jp-RenderedHTMLCommon th, .book-main .jp-RenderedHTMLCommon td { border: 1px solid var(--book-border);
  padding: .35rem .7rem; }
.book-main .jp-RenderedHTMLCommon thead { background: #f1f3f5; }
.book-main .jp-RenderedHTMLCommon hr { border: 0; border-top: 1px solid var(--book-border); margin: 1.8rem 0 1rem; }
/* show_doc blocks */
.book-main .jp-RenderedMarkdown.jp-OutputArea-output h3, .book-main .jp-RenderedMarkdown.jp-OutputArea-output h4
  { font-family: var(--book-mono); font-size: 1.15rem; color: #0b4f9c; margin-top: .4rem; }
.book-main .doc-source-link { float: right; font-size: .8rem; }
.callout { border: 1px solid var(--book-border); border-left: 5px solid var(--book-accent);
  border-radius: 6px; padding: .2rem 1rem .4rem; margin: 1rem 0; background: #fbfcfe; }
.callout-title { font-weight: 600; margin: .5rem 0 0; }
.callout-warning, .callout-caution { border-left-color: #f0ad4e; }
.callout-important { border-left-color: #d9534f; } .callout-tip { border-left-color: #3fb618; }
.book-main .widget-slider, .book-main .jupyter-widgets { font-family: var(--book-font); }
.book-main .plotly-graph-div { max-width: 100%; }
.book-pager { display: flex; justify-content: space-between; gap: 1rem; margin-top: 3rem;
  padding-top: 1.2rem; border-top: 1px solid var(--book-border); }
.book-pager a { flex: 1; display: block; padding: .7rem 1rem; border: 1px solid var(--book-border);
  border-radius: 8px; text-decoration: none; color: var(--book-text); max-width: 48%; }
.book-pager a:hover { border-color: var(--book-accent); }
.book-pager a small { display: block; color: var(--book-muted); font-size: .78rem; }
.book-pager a.next { text-align: right; margin-left: auto; }
.book-footer { color: var(--book-muted); font-size: .8rem; margin-top: 2rem; }
@media (max-width: 1200px) { .book-layout { grid-template-columns: 15rem minmax(0, 1fr); } .book-toc { display: none; } }
@media (max-width: 800px) {
  .book-layout { display: block; }
  .book-menu-toggle { display: block; }
  .book-sidebar { display: none; position: static; height: auto; border-right: 0;
    border-bottom: 1px solid var(--book-border); }
  #book-menu:checked ~ .book-layout .book-sidebar { display: block; }
  .book-main { padding: 1.2rem 1rem 3rem; }
  .book-topbar .book-top-links { display: none; }
}
@media print { .book-topbar, .book-sidebar, .book-toc, .book-pager { display: none; } .book-layout { display: block; } }
"""


def esc(s) -> str: return html.escape(str(s), quote=True)


def render_chrome(page, pages, groups, site_title, prefix):
    "Top bar, sidebar, title header, and prev/next pager for one page."
    by_src = {p["src"]: p for p in pages}
    firsts = [(name, next((by_src[s] for s in srcs if s in by_src), None)) for name, srcs in groups if name]
    top_links = "".join(f'<a href="{prefix}{esc(p["out"])}">{esc(name)}</a>' for name, p in firsts if p)
    index = next((p for p in pages if Path(p["out"]).stem == "index"), pages[0])
    topbar = ('<input type="checkbox" id="book-menu" aria-hidden="true">'
              '<header class="book-topbar"><label for="book-menu" class="book-menu-toggle" '
              'title="Contents">&#9776;</label>'
              f'<a class="book-brand" href="{prefix}{esc(index["out"])}">{esc(site_title)}</a>'
              f'<nav class="book-top-links">{top_links}</nav></header>')
    side = ['<nav class="book-sidebar" aria-label="Book contents">']
    for name, srcs in groups:
        if name: side.append(f'<div class="book-section">{esc(name)}</div>')
        side.append("<ul>")
        for s in srcs:
            p = by_src.get(s)
            if not p: continue
            cls = ' class="active" aria-current="page"' if p is page else ""
            side.append(f'<li><a href="{prefix}{esc(p["out"])}"{cls}>{esc(p["title"])}</a></li>')
        side.append("</ul>")
    side.append("</nav>")
    header = f'<header class="book-title"><h1>{esc(page["title"])}</h1>'
    if page.get("description"): header += f'<p class="book-description">{esc(page["description"])}</p>'
    header += "</header>"
    order = [by_src[s] for _, srcs in groups for s in srcs if s in by_src]
    pager = ""
    if page in order:
        i = order.index(page)
        prev_, next_ = (order[i - 1] if i else None), (order[i + 1] if i + 1 < len(order) else None)
        pager = '<nav class="book-pager">'
        if prev_: pager += f'<a class="prev" href="{prefix}{esc(prev_["out"])}"><small>&larr; Previous</small>{esc(prev_["title"])}</a>'
        if next_: pager += f'<a class="next" href="{prefix}{esc(next_["out"])}"><small>Next &rarr;</small>{esc(next_["title"])}</a>'
        pager += "</nav>"
    pager += f'<p class="book-footer">{esc(site_title)} &middot; built from the notebooks with nbdev + nbconvert</p>'
    return dict(topbar=topbar, sidebar="\n".join(side), header=header, pager=pager, prefix=prefix)


_re_h = re.compile(r'<h([23]) id="([^"]+)"[^>]*>(.*?)</h\1>', re.S)


def add_toc(page_html: str) -> str:
    items = []
    for lvl, hid, inner in _re_h.findall(page_html):
        text = re.sub(r"<[^>]+>", "", inner).replace("¶", "").strip()
        if text: items.append(f'<li class="lvl{lvl}"><a href="#{hid}">{html.escape(html.unescape(text))}</a></li>')
    toc = ('<nav class="book-toc" aria-label="On this page"><div class="book-toc-title">On this page</div>'
           f'<ul>{"".join(items)}</ul></nav>') if len(items) > 1 else '<nav class="book-toc"></nav>'
    return page_html.replace("<!--BOOK-TOC-->", toc, 1)


# ---------------------------------------------------------------------------- build
def run_proc_nbs(n_workers: int):
    "nbdev-proc-nbs without its Quarto install attempt (which would try sudo + a download)."
    from nbdev.serve import proc_nbs
    os.chdir(ROOT)
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    return proc_nbs(n_workers=n_workers)


def build_offline(out: Path, n_workers: int, skip_proc: bool = False) -> Path:
    from nbdev.config import get_config
    from nbconvert import HTMLExporter
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

    tmpl_dir = Path(tempfile.mkdtemp(prefix="book-tmpl-"))
    (tmpl_dir / "book").mkdir()
    (tmpl_dir / "book" / "index.html.j2").write_text(TEMPLATE)
    (tmpl_dir / "book" / "conf.json").write_text(json.dumps({"base_template": "lab", "mimetypes": {"text/html": True}}))

    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    copy_assets(out, npm)

    for page in pages:
        depth = len(Path(page["out"]).parts) - 1
        prefix = "../" * depth
        exporter = HTMLExporter(
            template_name="book", extra_template_basedirs=[str(tmpl_dir)],
            exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True,
            require_js_url=f"{prefix}assets/require.js",
            widget_renderer_url=f"{prefix}assets/html-manager/embed-amd.js",
            anchor_link_text="¶")
        nb = nbs_by_src[page["src"]]
        nb.metadata["title"] = page["title"] if page["title"] == site_title else f"{page['title']} – {site_title}"
        book = render_chrome(page, pages, groups, site_title, prefix)
        body, _ = exporter.from_notebook_node(
            nb, resources={"book": book, "metadata": {"name": Path(page["src"]).stem,
                                                     "path": str(nbs / Path(page["src"]).parent)}})
        # links: the published doc host -> relative; notebook links -> their pages
        if doc_url.strip("/"): body = body.replace(f'href="{doc_url}', f'href="{prefix}')
        body = re.sub(r'href="((?![a-z]+:)[^"#]*?\.ipynb)(#[^"]*)?"',
                      lambda m: f'href="{prefix}{src2out.get(os.path.normpath(str(Path(page["src"]).parent / m[1])), m[1][:-6] + ".html")}{m[2] or ""}"',
                      body)
        body = add_toc(body)
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
        (out / "index.html").write_text(f'<!doctype html><meta http-equiv="refresh" content="0; url={esc(pages[0]["out"])}">')
    (out / ".nojekyll").write_text("")
    manifest = [dict(src=f"{nbs.name}/{p['src']}", out=p["out"], title=p["title"]) for p in pages]
    (out / "assets" / "pages.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(tmpl_dir, ignore_errors=True)
    log(f"rendered {len(pages)} pages -> {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} "
        f"({time.time() - t:.1f} s)")
    return out


def build_quarto(n_workers: int) -> Path:
    exe = Path(sys.executable).parent / "nbdev-docs"
    cmd = [str(exe) if exe.exists() else "nbdev-docs", "--n-workers", str(n_workers)]
    log("quarto found: " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)
    from nbdev.config import get_config
    docs = Path(get_config(ROOT).doc_path)
    shutil.copy2(plotly_js(), docs / "plotly.min.js")  # nbs/_quarto.yml's header loads it
    return docs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--offline", action="store_true", help="offline nbconvert route even if Quarto exists")
    g.add_argument("--quarto", action="store_true", help="require Quarto (nbdev-docs)")
    ap.add_argument("--out", default=str(ROOT / "_site"), help="offline output folder (default _site)")
    ap.add_argument("--n-workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--skip-proc", action="store_true", help="reuse _proc/ as it is")
    a = ap.parse_args(argv)
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
