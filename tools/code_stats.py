#!/usr/bin/env python
"""Size and line-length statistics of the package, for the style rules in CONTRIBUTING.md.

    python tools/code_stats.py            # summary; non-zero exit if a limit is broken
    python tools/code_stats.py --detail   # also every long line and long exported cell

Limits: package lines over 88 characters <= 5%; no module over 350 lines (modules named in
`LONG_OK` say why they may be longer); exported cells over 40 lines are listed (each needs a reason
in its markdown).
"""
import argparse, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH, MAX_LONG, MAX_MODULE, MAX_CELL = 88, 0.05, 350, 40
GENERATED = {'_modidx.py', '__init__.py'}  # written by nbdev, not by us
LONG_OK = {  # modules allowed over MAX_MODULE lines, and why
    'vae_book/models/latent_models.py': "chapter 10 owns one module, and it holds the chapter's three "
                                        "model families (learned priors, VQ-VAE, two-layer VAE)",
}


def modules():
    for p in sorted((ROOT/'vae_book').rglob('*.py')):
        if p.name not in GENERATED: yield p


def exported_cells():
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            src = ''.join(c['source'])
            if c['cell_type'] == 'code' and src.startswith('#| export'):
                yield nb.name, c['id'], src.count('\n') + 1


def stats() -> tuple[int, int, list]:
    "Package lines, lines over `WIDTH`, and modules over `MAX_MODULE` lines not in `LONG_OK`"
    total = long = 0; over = []
    for p in modules():
        lines = p.read_text().split('\n')
        total += len(lines); long += sum(len(l) > WIDTH for l in lines)
        rel = str(p.relative_to(ROOT))
        if len(lines) > MAX_MODULE and rel not in LONG_OK: over.append(rel)
    return total, long, over


def main(detail=False):
    total = long = 0; sizes = {}
    for p in modules():
        lines = p.read_text().split('\n')
        n_long = [i for i, l in enumerate(lines, 1) if len(l) > WIDTH]
        total += len(lines); long += len(n_long); sizes[p.relative_to(ROOT)] = (len(lines), len(n_long))
        if detail:
            for i in n_long: print(f"{p.relative_to(ROOT)}:{i}: {len(lines[i-1])} chars")
    big_cells = [c for c in exported_cells() if c[2] > MAX_CELL]
    print(f"package: {total} lines, {long} over {WIDTH} chars ({long/total:.1%}; limit {MAX_LONG:.0%})")
    for p, (n, nl) in sorted(sizes.items(), key=lambda x: -x[1][0])[:8]:
        print(f"  {p}: {n} lines, {nl} long")
    print(f"exported cells over {MAX_CELL} lines: {len(big_cells)}")
    if detail:
        for c in big_cells: print(f"  {c[0]} {c[1]}: {c[2]} lines")
    over = [p for p, (n, _) in sizes.items() if n > MAX_MODULE and str(p) not in LONG_OK]
    ok = long/total <= MAX_LONG and not over
    if over: print("modules over", MAX_MODULE, "lines:", ", ".join(map(str, over)))
    return 0 if ok else 1


if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--detail', action='store_true')
    sys.exit(main(ap.parse_args().detail))
