"""The pretrained checkpoints shipped in vae_book/weights/: small, loadable offline with one call, the
model their metrics describe, and present in (and loadable from) an installed wheel in a fresh venv."""
import os, subprocess, sys, textwrap, zipfile
from pathlib import Path

import pytest
import torch

from vae_book.data import load_images, DataNotFoundError
from vae_book.pretrained import RECIPES, WEIGHTS, load_pretrained, list_pretrained, weights_path, check_pretrained

ROOT = Path(__file__).resolve().parent.parent
NAMES = list(RECIPES)

# Run before anything else in a child interpreter: any attempt to open a socket fails loudly.
NO_NET = textwrap.dedent("""
    import socket
    class _NoNet(socket.socket):
        def __init__(self, *a, **k): raise OSError('network access attempted during an offline load')
    socket.socket = _NoNet
    socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(OSError('network access attempted'))
""")

LOAD_ALL = NO_NET + textwrap.dedent("""
    import torch, vae_book
    from vae_book.pretrained import RECIPES, load_pretrained
    for name in RECIPES:
        m = load_pretrained(name)
        assert not m.training and next(m.parameters()).dtype == torch.float32, name
        assert name.endswith('_' + m.card['dataset']) and m.card['metrics'][RECIPES[name].metric], name
        if hasattr(m, 'decode') and hasattr(m, 'n_classes'):  # conditional: decode(z, y)
            out = m.decode(torch.zeros(3, m.latent_dim), torch.tensor([0, 1, 2]))
        elif hasattr(m, 'decode'): out = m.decode(torch.zeros(3, m.latent_dim))
        else: out = m(torch.zeros(3, 1, 28, 28))
        assert torch.isfinite(out).all(), name
        print(name, 'ok')
    print('FROM', vae_book.__file__)
""")


def _offline_env(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith('VAE_BOOK_')}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / '.cache'), PYTHONNOUSERSITE='1',
               http_proxy='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9')
    return env


def test_every_recipe_is_shipped_small_and_half_precision():
    assert {p.stem for p in WEIGHTS.glob('*.pt')} == set(NAMES)
    for name in NAMES:
        p = weights_path(name)
        assert p.stat().st_size <= 2.1e6, f'{p.name} is {p.stat().st_size/1e6:.2f} MB'
        ck = torch.load(p, map_location='cpu', weights_only=True)
        assert all(v.dtype == torch.float16 for v in ck['state_dict'].values() if v.is_floating_point())
        assert ck['config']['dataset'] == RECIPES[name].dataset and name.endswith(f'_{RECIPES[name].dataset}')
        assert ck['command'] == f'python bench/reproduce_pretrained.py --write {name}'
        assert RECIPES[name].metric in ck['metrics']
    rows = list_pretrained()
    assert [r['name'] for r in rows] == NAMES and all(r['metrics'] for r in rows)


def test_load_errors():
    with pytest.raises(KeyError, match='available'): load_pretrained('vae_mlp2_mnist')


def test_loads_offline_without_data(tmp_path):
    "a child interpreter with no data folder, no VAE_BOOK_* variables and sockets disabled"
    r = subprocess.run([sys.executable, '-c', LOAD_ALL], cwd=tmp_path, env=_offline_env(tmp_path),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(f'{n} ok' in r.stdout for n in NAMES)


def _have(dataset):
    try: load_images(dataset, train=False, download=False); return True
    except DataNotFoundError: return False


@pytest.mark.parametrize('name', NAMES)
def test_recorded_metrics_come_back_from_the_shipped_weights(name):
    if not _have(RECIPES[name].dataset): pytest.skip(f'{RECIPES[name].dataset} is not on this machine')
    res = check_pretrained(name)
    assert RECIPES[name].metric in res
    for k, (want, got) in res.items():
        assert abs(got - want) <= 1e-3*max(1, abs(want)), f'{name} {k}: recorded {want}, measured {got}'


def test_wheel_contains_the_weights_and_loads_them_in_a_fresh_venv(wheel, wheel_venv, tmp_path):
    "the wheel (built once, tests/conftest.py) holds the weights; installed in a new venv, they load with no data/network"
    names = zipfile.ZipFile(wheel).namelist()
    assert {f'vae_book/weights/{n}.pt' for n in NAMES} <= set(names), [n for n in names if 'weights' in n]
    r = subprocess.run([wheel_venv, '-c', LOAD_ALL], cwd=tmp_path, env=_offline_env(tmp_path),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f'FROM {wheel_venv.parent.parent}' in r.stdout, r.stdout  # the wheel's copy, not the checkout
