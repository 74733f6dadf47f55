"""Write README.md from nbs/index.ipynb without Quarto (`nbdev-readme` needs it).

Markdown cells are copied, code cells become ```python blocks, and text outputs follow them;
`#| hide` cells are left out. Run: `python tools/make_readme.py` (tools/test.sh checks it is current)."""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']

def _out(cell):
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream' and o.get('name') == 'stdout': yield ''.join(o['text'])
        elif 'data' in o and 'text/plain' in o['data'] and 'text/html' not in o['data']:
            yield ''.join(o['data']['text/plain'])

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = _src(c).strip()
        if not src or re.search(r'^#\|\s*hide\b', src, re.M): continue
        if c['cell_type'] == 'markdown': parts.append(src)
        elif c['cell_type'] == 'code':
            code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
            parts.append(f'```python\n{code}\n```')
            outs = [o.rstrip() for o in _out(c) if o.strip()]
            if outs: parts.append('```\n' + '\n'.join(outs) + '\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text = render()
    if '--check' in sys.argv:
        cur = (ROOT/'README.md').read_text() if (ROOT/'README.md').exists() else ''
        if cur != text: sys.exit('README.md is out of date: run python tools/make_readme.py')
        print('README.md is current')
    else: (ROOT/'README.md').write_text(text); print('wrote README.md')
