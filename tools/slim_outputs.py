#!/usr/bin/env python3
"""Slim the saved plotly outputs of notebooks in place, without re-executing them.

    python tools/slim_outputs.py                 # every nbs/*.ipynb
    python tools/slim_outputs.py nbs/06_vae.ipynb --check   # exit 1 if anything would change

Each plotly output is kept as ONE representation, plotly's JSON mimetype
(`application/vnd.plotly.v1+json`), which JupyterLab draws natively and the site turns into
a `<div>` + `Plotly.newPlot` (tools/site/). What goes:
- the `text/html` copy that the book's old renderer stored beside the JSON;
- a stock plotly template (e.g. plotly's ~7 KB default) embedded in the figure's layout (and
  in its frames' layouts), replaced by the book's slim `vae_book.core.BOOK_TEMPLATE`, which is
  what `use_book_renderer()` gives newly executed figures.
Idempotent. Each notebook is read, changed and written back within a moment (atomic replace),
and written only if it changed on disk in between neither (then it is redone).
"""
from __future__ import annotations

import argparse, copy, json, os, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLOTLY = "application/vnd.plotly.v1+json"


def stock_templates() -> list[dict]:
    "The JSON of every template plotly ships (what old figures carry in `layout.template`)"
    import plotly.io as pio
    return [pio.templates[n].to_plotly_json() for n in pio.templates]


def _is_plotly_html(html) -> bool:
    s = "".join(html) if isinstance(html, list) else str(html)
    return "plotly-graph-div" in s or "Plotly.newPlot" in s


def slim_figure(fig: dict, stock: list[dict], slim: dict) -> bool:
    "Replace stock templates in `fig`'s layout and frames by `slim`; True if changed"
    changed = False
    layouts = [fig.get("layout")] + [fr.get("layout") for fr in fig.get("frames") or []]
    for lay in layouts:
        if isinstance(lay, dict) and lay.get("template") in stock and lay["template"] != slim:
            lay["template"] = copy.deepcopy(slim); changed = True
    return changed


def slim_notebook(nb: dict, stock: list[dict], slim: dict) -> dict:
    "Slim `nb` in place; returns counts of what changed"
    n = dict(html_dropped=0, templates_slimmed=0, plotly_outputs=0)
    for c in nb.get("cells", []):
        for o in c.get("outputs", []) or []:
            d = o.get("data") or {}
            if PLOTLY not in d: continue
            n["plotly_outputs"] += 1
            if "text/html" in d and _is_plotly_html(d["text/html"]):
                del d["text/html"]; n["html_dropped"] += 1
            if isinstance(d[PLOTLY], dict) and slim_figure(d[PLOTLY], stock, slim):
                n["templates_slimmed"] += 1
    return n


def _dump(nb: dict, trailing_nl: bool) -> str:
    # the layout nbformat/nbdev-clean write: indent 1, keys as they are, UTF-8 kept
    return json.dumps(nb, indent=1, ensure_ascii=False) + ("\n" if trailing_nl else "")


def process(path: Path, stock, slim, check=False, tries=5) -> dict:
    for _ in range(tries):
        st = path.stat()
        text = path.read_text(encoding="utf-8")
        nb = json.loads(text)
        n = slim_notebook(nb, stock, slim)
        if not (n["html_dropped"] or n["templates_slimmed"]) or check: return n
        new = _dump(nb, text.endswith("\n"))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".ipynb")
        with os.fdopen(fd, "w", encoding="utf-8") as f: f.write(new)
        now = path.stat()
        if (now.st_mtime_ns, now.st_size) != (st.st_mtime_ns, st.st_size):
            os.unlink(tmp); continue  # someone wrote it meanwhile: redo from the new content
        os.chmod(tmp, st.st_mode & 0o777)
        os.replace(tmp, path)
        return n
    raise RuntimeError(f"{path} kept changing; try again")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if needed")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from vae_book.core import BOOK_TEMPLATE
    stock = stock_templates()
    paths = a.notebooks or sorted((ROOT / "nbs").glob("*.ipynb"))
    todo = 0
    for p in paths:
        before = p.stat().st_size
        n = process(p, stock, BOOK_TEMPLATE, a.check)
        todo += n["html_dropped"] + n["templates_slimmed"]
        if n["plotly_outputs"]:
            print(f"{p.name}: {n['plotly_outputs']} plotly outputs, {n['html_dropped']} HTML "
                  f"copies dropped, {n['templates_slimmed']} templates slimmed, "
                  f"{before/1024:.0f} -> {p.stat().st_size/1024:.0f} KB")
    if a.check and todo:
        print(f"{todo} outputs to slim: run python tools/slim_outputs.py"); return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
