#!/usr/bin/env python
"""Execute notebooks and save their outputs without clobbering edits made meanwhile.

    python tools/run_nb.py nbs/06_vae.ipynb [more.ipynb ...] [--timeout 1800] [--full]

Each notebook is executed from a copy (kernel started in `nbs/`), then its outputs are merged back
into the file *as it is on disk now*, cell by cell (matched by cell id): a cell whose source changed
while it ran keeps its old outputs and is listed, so an edit made by someone else is never lost.
Widget state is saved too. `--full` sets `VAE_BOOK_FULL=1` (full-budget runs); `--flags slow` runs
`#| slow` cells as well (they are skipped otherwise, as in `nbdev-test`). Afterwards run `nbdev-clean`.
"""
from __future__ import annotations
import argparse, copy, json, os, re, sys, tempfile, time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
_FLAG = re.compile(r'^\s*#\|\s*(slow|cuda)\s*$', re.M)


def _skip(cell, flags:set[str]) -> bool:
    if cell.cell_type != 'code': return False
    return any(m.group(1) not in flags for m in _FLAG.finditer(cell.source))


def execute(path:Path, timeout:int, flags:set[str]) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    run = copy.deepcopy(nb)
    skipped = {}
    for i, c in enumerate(run.cells):  # nbdev-test's rule: flagged cells run only with their flag
        if _skip(c, flags):
            skipped[i] = c.source; c.source = '# skipped: ' + c.source.splitlines()[0]
    client = NotebookClient(run, timeout=timeout, kernel_name='python3', store_widget_state=True,
                            resources={'metadata': {'path': str(path.parent)}})
    client.execute()
    for i, src in skipped.items():  # a skipped cell keeps the outputs it had
        run.cells[i].source = src; run.cells[i].outputs = nb.cells[i].outputs
        run.cells[i].execution_count = nb.cells[i].get('execution_count')
    return run


def merge(path:Path, ran:nbformat.NotebookNode, before:dict[str, str]) -> list[str]:
    "Copy outputs of `ran` into the file on disk now; returns ids of cells edited meanwhile"
    now = nbformat.read(path, as_version=4)
    by_id = {c.get('id'): c for c in ran.cells}
    changed = []
    for c in now.cells:
        r = by_id.get(c.get('id'))
        if r is None or c.cell_type != 'code': continue
        if c.source != before.get(c.get('id')): changed.append(c.get('id')); continue
        c.outputs, c.execution_count = r.outputs, r.get('execution_count')
    if 'widgets' in ran.metadata: now.metadata['widgets'] = ran.metadata['widgets']
    else: now.metadata.pop('widgets', None)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.stem}.', suffix='.ipynb')
    with os.fdopen(fd, 'w') as f: nbformat.write(now, f)
    os.chmod(tmp, path.stat().st_mode & 0o777)  # mkstemp makes 0600 files: keep the notebook's mode
    os.replace(tmp, path)
    return changed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('notebooks', nargs='+')
    ap.add_argument('--timeout', type=int, default=1800, help='seconds per cell')
    ap.add_argument('--full', action='store_true', help='VAE_BOOK_FULL=1: full-budget runs')
    ap.add_argument('--flags', default='', help="e.g. 'slow' to run `#| slow` cells too")
    a = ap.parse_args()
    if a.full: os.environ['VAE_BOOK_FULL'] = '1'
    flags = set(a.flags.split())
    rc = 0
    for p in map(Path, a.notebooks):
        p = p.resolve(); t = time.time()
        before = {c.get('id'): c.source for c in nbformat.read(p, as_version=4).cells}
        try: ran = execute(p, a.timeout, flags)
        except Exception as e:
            msg = re.sub(r'\x1b\[[0-9;]*m', '', str(e))  # no terminal colours in logs
            print(f'FAILED {p.name}: {type(e).__name__}: {msg[:1500]}\n...\n{msg[-1500:]}', file=sys.stderr); rc = 1; continue
        changed = merge(p, ran, before)
        msg = f'; kept old outputs of cells edited meanwhile: {changed}' if changed else ''
        print(f'{p.name}: executed in {time.time()-t:.0f} s{msg}')
    sys.exit(rc)


if __name__ == '__main__': main()
