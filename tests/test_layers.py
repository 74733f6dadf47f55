"""The package's layers (STYLE.md §1), checked statically with `ast` on every module.

Floors: 0 core, datasets, data, estimators, losses; 1 models (pure nn.Modules); 2 train, metrics,
checkpoint and fit's plumbing; 3 plots, viz, canvas, widgets, web; 4 experiments, pretrained. A module
imports only its own floor or lower ones; there is no import cycle between the book's
modules (imports inside functions and `importlib.import_module('vae_book...')` literals
count); a model module imports neither `vae_book.data` nor plotly, tqdm or ipywidgets.
A module missing from `FLOORS` fails: place each new module there.
Also: every shipped checkpoint loads in a fresh process with nothing imported first,
including those whose architecture moved after they were saved (LeNet, saved from
`vae_book.metrics`).
"""
import ast, fnmatch, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT/'vae_book'

FLOORS = {  # module-name pattern -> floor; the first pattern that matches wins
    'vae_book': 0, 'vae_book._modidx': 0,
    'vae_book.core': 0, 'vae_book.data': 0, 'vae_book.datasets': 0, 'vae_book.estimators': 0,
    'vae_book.losses': 0, 'vae_book.losses.*': 0,
    'vae_book.models': 1, 'vae_book.models.*': 1,
    'vae_book.train': 2, 'vae_book.metrics': 2, 'vae_book.checkpoint': 2,
    'vae_book.batches': 2, 'vae_book.distributed': 2, 'vae_book.steps': 2,  # fit's parts
    'vae_book.plots': 3, 'vae_book.viz': 3, 'vae_book.canvas': 3, 'vae_book.widgets': 3,
    'vae_book.web': 3,
    'vae_book.experiments': 4, 'vae_book.experiments.*': 4, 'vae_book.pretrained': 4,
}
MODEL_FORBIDDEN = ('plotly', 'tqdm', 'ipywidgets', 'vae_book.data')


def floor(mod: str) -> int | None:
    "The floor of module `mod`, or None if `FLOORS` does not place it"
    return next((f for pat, f in FLOORS.items() if fnmatch.fnmatchcase(mod, pat)), None)


def modules(pkg: Path = PKG) -> dict[str, Path]:
    "Module name -> file, for every .py file of the package `pkg`"
    out = {}
    for p in sorted(pkg.rglob('*.py')):
        parts = p.relative_to(pkg.parent).with_suffix('').parts
        out['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = p
    return out


def imports(name: str, path: Path, known: set) -> list[tuple[str, int]]:
    "(imported module, line) for every import in the file, at any depth, absolute names"
    is_pkg = path.name == '__init__.py'
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split('.') if is_pkg else name.split('.')[:-1]
                base = base[:len(base) - node.level + 1]
                src = '.'.join(base + ([node.module] if node.module else []))
            else: src = node.module
            for a in node.names:  # `from pkg import submodule` imports the submodule
                sub = f'{src}.{a.name}'
                out.append((sub if sub in known else src, node.lineno))
        elif isinstance(node, ast.Call) and node.args:
            fn, arg = node.func, node.args[0]
            fname = getattr(fn, 'attr', getattr(fn, 'id', None))
            if (fname in ('import_module', '__import__')
                    and isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                out.append((arg.value, node.lineno))
    return out


def graph(pkg: Path = PKG) -> dict[str, list[tuple[str, int]]]:
    "Module -> the book's modules it imports (with lines)"
    mods = modules(pkg)
    return {m: [(t, ln) for t, ln in imports(m, p, set(mods))
                if t.split('.')[0] == 'vae_book'] for m, p in mods.items()}


def all_imports(pkg: Path = PKG) -> dict[str, list[tuple[str, int]]]:
    mods = modules(pkg)
    return {m: imports(m, p, set(mods)) for m, p in mods.items()}


def unplaced(pkg: Path = PKG) -> list[str]:
    return [m for m in modules(pkg) if floor(m) is None]


def upward(mod: str, pkg: Path = PKG) -> list[str]:
    "Imports of `mod` from a higher floor (or from an unplaced module)"
    f, g = floor(mod), graph(pkg)
    bad = (f'{mod}:{ln} imports {t} (floor {floor(t)} > {f})' for t, ln in g[mod]
           if floor(t) is None or f is None or floor(t) > f)
    return list(dict.fromkeys(bad))


def impure(mod: str, pkg: Path = PKG) -> list[str]:
    "What a model module imports that a model file must not: data, plots, progress bars"
    bad = (f'{mod}:{ln} imports {t}' for t, ln in all_imports(pkg)[mod]
           if any(t == b or t.startswith(b + '.') for b in MODEL_FORBIDDEN))
    return list(dict.fromkeys(bad))


def cycles(pkg: Path = PKG) -> list[list[str]]:
    "Strongly connected components of several modules (or a module importing itself)"
    g = {m: sorted({t for t, _ in ts}) for m, ts in graph(pkg).items()}
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):  # Tarjan's algorithm
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in g.get(v, []):
            if w not in g: continue
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1 or v in g[v]: out.append(sorted(comp))
    for v in sorted(g):
        if v not in index: visit(v)
    return out


MODS = sorted(modules())
MODELS = [m for m in MODS if m.startswith('vae_book.models.')]


def test_every_module_is_placed_on_a_floor():
    assert not unplaced(), f"place these modules in FLOORS: {unplaced()}"


@pytest.mark.parametrize('mod', MODS)
def test_imports_only_go_down(mod):
    assert not upward(mod), '\n'.join(upward(mod))


def test_no_import_cycles():
    assert not cycles(), f"import cycles between the book's modules: {cycles()}"


@pytest.mark.parametrize('mod', MODELS)
def test_model_modules_are_pure(mod):
    assert not impure(mod), '\n'.join(impure(mod))


def test_the_checker_catches_injected_violations(tmp_path):
    "The same checks on a copy of the package with a violation of each kind planted"
    pkg = tmp_path/'vae_book'
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns('weights', '__pycache__'))
    assert not cycles(pkg) and not impure('vae_book.models.vae', pkg)  # clean before
    add = lambda f, s: (pkg/f).write_text((pkg/f).read_text() + s)
    add('models/vae.py', '\nfrom ..train import fit\n')             # upward, top level
    add('data.py', '\ndef _f():\n    import vae_book.viz\n')          # upward, deferred
    add('metrics.py', "\nimport importlib\n"
                      "importlib.import_module('vae_book.pretrained')\n")  # a string
    add('core.py', '\ndef _g():\n    from .data import Batch\n')          # a cycle
    add('models/autoencoder.py', '\nimport plotly.graph_objects as go\n')
    add('models/cvae.py', '\nfrom ..data import Batch\n')
    (pkg/'newmod.py').write_text('import torch\n')
    assert any('vae_book.train' in s for s in upward('vae_book.models.vae', pkg))
    assert any('vae_book.viz' in s for s in upward('vae_book.data', pkg))
    assert any('vae_book.pretrained' in s for s in upward('vae_book.metrics', pkg))
    assert any({'vae_book.core', 'vae_book.data'} <= set(c) for c in cycles(pkg))
    assert any('plotly' in s for s in impure('vae_book.models.autoencoder', pkg))
    assert any('vae_book.data' in s for s in impure('vae_book.models.cvae', pkg))
    assert unplaced(pkg) == ['vae_book.newmod']


LOAD = """
import sys
try: from vae_book.checkpoint import load
except ImportError: from vae_book.train import load
m = load(sys.argv[1]).model
print(m.arch['name'], type(m).__module__)
"""


WEIGHTS = sorted((PKG/'weights').glob('*.pt'))


@pytest.mark.parametrize('path', WEIGHTS, ids=lambda p: p.stem)
def test_shipped_weights_load_in_a_fresh_process(path):
    r = subprocess.run([sys.executable, '-c', LOAD, str(path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    arch, module = r.stdout.split()[-2:]
    assert module.startswith('vae_book.models.'), r.stdout  # models live in models/
    if arch == 'lenet': assert module == 'vae_book.models.lenet', r.stdout  # moved


def test_the_weights_are_there():
    assert len(WEIGHTS) >= 8, WEIGHTS  # the load test above cannot pass on an empty folder


def test_code_size_limits():
    "CONTRIBUTING's limits: <= 5% of package lines over 88 characters, modules <= 350 lines"
    sys.path.insert(0, str(ROOT/'tools'))
    import code_stats
    total, long, over = code_stats.stats()
    assert long/total <= code_stats.MAX_LONG, f"{long} of {total} lines over 88 characters"
    assert not over, f"modules over {code_stats.MAX_MODULE} lines: {over} (see LONG_OK)"
