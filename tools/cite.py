#!/usr/bin/env python
"""Citations in the book's prose, checked and linked against the bibliography page.

    python tools/cite.py --check   # every citation in a chapter has an entry in nbs/bibliography.ipynb
    python tools/cite.py --link    # turn plain citations in markdown cells into links to their entry

A citation is written as in the text: `Burda et al. 2015`, `Kingma & Welling 2014`, `White 2016`,
`Dempster, Laird & Rubin 1977` (a year may sit in parentheses: `White (2016)`). Its key is the citation
lower-cased with everything but letters and digits dropped (`burdaetal2015`), which is the anchor id of its
entry on the bibliography page: `<a id="burdaetal2015"></a>**Burda et al. 2015**`. An entry may carry
more anchors for other spellings of the same work (`Burda et al. 2016` for the ICLR version).
"""
from __future__ import annotations
import argparse, json, re, sys, unicodedata
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
BIB = NBS/'bibliography.ipynb'
_NAME = r"(?:van den |de |van )?[A-Z][\w\-'’]+"
CITE = re.compile(rf"(?<![\w\[])(?P<name>{_NAME}(?:\s+et\s+al\.|(?:,\s+{_NAME})*\s+&\s+{_NAME})?),?\s+"
                  r"(?P<open>\()?(?P<year>(?:19|20)\d\d)(?(open)(?P<close>\))?)(?![\w\]])")
ANCHOR = re.compile(r'<a id="([a-z0-9]+)"></a>')


def key(cite:str) -> str:
    "`Burda et al. 2015` -> `burdaetal2015` (accents dropped)"
    s = unicodedata.normalize('NFKD', cite).encode('ascii', 'ignore').decode()
    return re.sub(r'[^a-z0-9]', '', s.lower())


def markdown(path:Path) -> list[str]:
    "The sources of `path`'s markdown cells (plain JSON: much faster than validating with nbformat)"
    cells = json.loads(Path(path).read_text())['cells']
    return [''.join(c['source']) for c in cells if c['cell_type'] == 'markdown']


def entries() -> set[str]:
    "Every anchor id on the bibliography page"
    return {m.group(1) for src in markdown(BIB) for m in ANCHOR.finditer(src)}


def _plain_spans(src:str):
    "Spans of `src` outside maths, code and existing links, where a citation may be linked"
    skip = re.compile(r'\$\$.*?\$\$|\$[^$\n]*\$|`[^`\n]*`|\[[^\]\n]*\]\([^)\n]*\)|<[^>\n]*>', re.S)
    pos = 0
    for m in skip.finditer(src):
        yield pos, m.start(); pos = m.end()
    yield pos, len(src)


def citations(src:str, known:set[str]|None=None):
    "(start, end, text, key) of each plain citation in markdown `src` (only known keys if `known`)"
    for a, b in _plain_spans(src):
        for m in CITE.finditer(src, a, b):
            k = key(f"{m['name']} {m['year']}")  # whitespace (a line break too) drops out of the key
            if known is not None and k not in known: continue
            # `Name (2014, eq. 3)`: link the name only, so the parenthesis stays balanced
            end = m.end('name') if m['open'] and not m['close'] else m.end()
            yield m.start(), end, src[m.start():end], k


def notebooks() -> list[Path]:
    return [p for p in sorted(NBS.glob('*.ipynb')) if p != BIB and not p.name.startswith('_')]


def check() -> list[str]:
    "Citations with no bibliography entry, as 'notebook: citation' lines"
    known, missing = entries(), []
    for p in notebooks():
        for src in markdown(p):
            src = re.sub(r'\[([^\]\n]*)\]\(bibliography\.ipynb#[a-z0-9]+\)', r'\1', src)
            for _, _, text, k in citations(src):
                if k not in known and _looks_like_author(text): missing.append(f'{p.name}: {text}')
    return missing


def _looks_like_author(text:str) -> bool:
    "Drop phrases such as 'In 2016' or 'Fig 2019' that the pattern also matches"
    first = text.split()[0].strip(',')
    return first not in {'In', 'Since', 'By', 'From', 'Until', 'Before', 'After', 'Fig', 'Table',
                         'MNIST', 'ELBO', 'ICLR', 'NeurIPS', 'ICML', 'CVPR', 'Chapter', 'Section'}


def link() -> int:
    "Link every plain, known citation in the chapters' markdown; returns how many were linked"
    known, n = entries(), 0
    for p in notebooks():
        nb = nbformat.read(p, as_version=4); changed = False
        for c in nb.cells:
            if c.cell_type != 'markdown' or c.source.lstrip().startswith('#| export'): continue
            hits = list(citations(c.source, known))
            for s, e, text, k in reversed(hits):
                c.source = f'{c.source[:s]}[{text}](bibliography.ipynb#{k}){c.source[e:]}'
            n += len(hits); changed |= bool(hits)
        if changed: nbformat.write(nb, p)
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--check', action='store_true'); ap.add_argument('--link', action='store_true')
    a = ap.parse_args()
    if a.link: print(f'linked {link()} citations')
    if a.check or not a.link:
        missing = check()
        print('\n'.join(missing) or f'every citation has an entry ({len(entries())} anchors)')
        sys.exit(1 if missing else 0)


if __name__ == '__main__': main()
