"""Every registered model in the book, one parametrized suite: shapes, output fields, gradients, one-batch
overfitting, sampling, rebuilding from `.arch`, determinism, and the same on CUDA when there is a GPU.

Models are discovered, not listed: every module of `vae_book.models` (the `lenet` judge among them) and
`vae_book.losses` is imported, and every factory in `vae_book.core.ARCHS` is tested. A new model picks up
these tests by being registered; `SMALL` may give it small constructor arguments to keep the suite fast.
Models follow one of two protocols: `loss(batch)` (everything `fit` trains), or `players()` (the games of
`vae_book.models.gan`: each player minimises its own loss over its own parameters); both are checked.
Games are not expected to overfit one batch (their losses fight each other), so that check skips them.
"""
import importlib, inspect, json, math, pkgutil, sys

import pytest
import torch

import vae_book.losses as _losses
import vae_book.models as _models
from vae_book.core import ARCHS, build_arch, set_seed
from vae_book.data import Batch, DataNotFoundError, load_images

for _pkg in (_models, _losses):  # registers every model factory of the book
    for _m in pkgutil.iter_modules(_pkg.__path__): importlib.import_module(f'{_pkg.__name__}.{_m.name}')

# Small but complete versions of the known models (defaults are used for any other registered arch)
SMALL = {
    'mlp_autoencoder': dict(hidden_dim=64, latent_dim=4),
    'mlp_vae': dict(hidden_dim=64, latent_dim=4),
    'cvae': dict(hidden_dim=64, latent_dim=4),
    'conv_vae': dict(latent_dim=4, channels=8),
    'vit_vae': dict(latent_dim=4, dim=32, depth=2, heads=2, channels=8),
    'lenet': dict(width=8),
    'dcgan': dict(latent_dim=4, channels=8),
    'vae_gan': dict(latent_dim=4, channels=8),
    'prior_vae': dict(vae_arch={'name': 'mlp_vae', 'kwargs': dict(hidden_dim=64, latent_dim=4)},
                      hidden_dim=32),
}
# What `forward` returns: NamedTuple fields, or None for a plain tensor of logits (classifiers)
FIELDS = {
    'mlp_autoencoder': ('x_hat', 'z'),
    'mlp_vae': ('x_hat', 'mu', 'logvar', 'z'),
    'cvae': ('x_hat', 'mu', 'logvar', 'z'),
    'conv_vae': ('x_hat', 'mu', 'logvar', 'z'),
    'vit_vae': ('x_hat', 'mu', 'logvar', 'z'),
    'lenet': None,
}
# Models that cannot memorise a batch (too little capacity) need only a smaller relative drop
OVERFIT_DROP = {'linear_gaussian': 0.15,
                'prior_vae': 0.05}  # a prior on codes drawn afresh each step: a noisy target
BOOK_MODELS = {'mlp_autoencoder', 'mlp_vae', 'cvae', 'conv_vae', 'vit_vae', 'lenet'}
NAMES = sorted(ARCHS)
B = 8


def objectives(model) -> list:
    "(name, parameters, loss function) for each player of a game, or the one `loss` of everything else"
    if callable(getattr(model, 'players', None)):
        return [(pl.name, list(pl.params), pl.loss) for pl in model.players()]
    return [('model', [p for p in model.parameters() if p.requires_grad], model.loss)]


def is_game(model) -> bool: return len(objectives(model)) > 1


def has_forward(model) -> bool: return type(model).forward is not torch.nn.Module.forward


def build(name):
    set_seed(0)
    return ARCHS[name](**SMALL.get(name, {}))


def takes_labels(fn) -> bool:
    return 'y' in inspect.signature(fn).parameters


def run_forward(model, b):
    return model(b.x, b.y) if takes_labels(model.forward) else model(b.x)


_REAL = {}
def real_images(n=16):
    "`n` binarized real test images (Fashion-MNIST or MNIST, whichever is on disk), else synthetic shapes"
    if 'x' not in _REAL:
        x = y = None
        for name in ('fashion', 'mnist'):
            try: x, y = load_images(name, train=False, download=False); break
            except DataNotFoundError: continue
        if x is None:  # bright rectangles of random size and place: structured, learnable images
            g = torch.Generator().manual_seed(0); x = torch.zeros(64, 28, 28, dtype=torch.uint8)
            for i in range(64):
                r, c = torch.randint(0, 14, (2,), generator=g); h, w = torch.randint(6, 14, (2,), generator=g)
                x[i, r:r + h, c:c + w] = 255
            y = torch.arange(64) % 10
        g = torch.Generator().manual_seed(0)
        _REAL['x'] = torch.bernoulli(x[:64].float().div(255).unsqueeze(1), generator=g)
        _REAL['y'] = y[:64].long()
    return Batch(_REAL['x'][:n], _REAL['y'][:n])


def test_discovery_finds_the_book_models():
    missing = BOOK_MODELS - set(ARCHS)
    assert not missing, f"registered archs {sorted(ARCHS)} lack {sorted(missing)}"


@pytest.mark.parametrize('name', NAMES)
def test_forward_shapes_and_fields(name):
    model, b = build(name), real_images(B)
    if not has_forward(model): pytest.skip(f"{name} has no forward (a game: its players are tested below)")
    out = run_forward(model, b)
    fields = FIELDS.get(name, 'unknown')
    if fields is None:  # a classifier: logits
        assert isinstance(out, torch.Tensor) and out.shape == (B, 10)
        return
    assert isinstance(out, tuple) and hasattr(out, '_fields'), f"{name}.forward must return a NamedTuple"
    if fields != 'unknown': assert out._fields == fields
    if 'x_hat' in out._fields:  # the data's shape, or the same numbers flattened (e.g. `linear_gaussian`)
        assert len(out.x_hat) == B and out.x_hat[0].numel() == b.x[0].numel(), out.x_hat.shape
        if out.x_hat.dim() == b.x.dim(): assert out.x_hat.shape == b.x.shape
    D = getattr(model, 'latent_dim', None) or getattr(getattr(model, 'encoder', None), 'latent_dim', None)
    for f in ('mu', 'logvar', 'z'):
        if f in out._fields: assert getattr(out, f).shape == (B, D), f


@pytest.mark.parametrize('name', NAMES)
def test_loss_protocol(name):
    model, b = build(name), real_images(B)
    for who, _, loss in objectives(model):
        out = loss(b)
        assert isinstance(out, tuple) and hasattr(out, '_fields') and out._fields[0] == 'loss', (who, type(out))
        assert out.loss.shape == () and torch.isfinite(out.loss), (who, out)
        for f, v in zip(out._fields, out):
            if isinstance(v, torch.Tensor) and v.numel() == 1: assert torch.isfinite(v), (who, f)


@pytest.mark.parametrize('name', NAMES)
def test_gradients_reach_every_parameter(name):
    model, b = build(name), real_images(B)
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable, f"{name} has no trainable parameters"
    covered = set()
    for who, params, loss in objectives(model):  # each player's loss must reach each of its parameters
        model.zero_grad(set_to_none=True)
        loss(b).loss.backward()
        none = [names[id(p)] for p in params if p.grad is None]
        assert not none, f"{who}: no gradient reaches {none}"
        assert all(torch.isfinite(p.grad).all() for p in params), who
        zero = [names[id(p)] for p in params if p.grad.abs().sum() == 0]
        assert len(zero) <= len(params)//4, f"{who}: mostly zero gradients: {zero}"
        covered |= {id(p) for p in params}
    assert trainable <= covered, f"parameters no loss trains: {[names[i] for i in trainable - covered]}"


@pytest.mark.parametrize('name', NAMES)
def test_overfits_one_batch(name):
    model, b = build(name), real_images(16)
    if is_game(model): pytest.skip("a game: its players' losses fight each other")
    set_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(b).loss.item()
    for _ in range(120):
        opt.zero_grad(); model.loss(b).loss.backward(); opt.step()
    model.eval(); set_seed(1)
    last = model.loss(b).loss.item()
    assert first - last > OVERFIT_DROP.get(name, 0.4)*abs(first), (first, last)


@pytest.mark.parametrize('name', NAMES)
def test_sample_shapes(name):
    model = build(name)
    if not hasattr(model, 'sample'): pytest.skip(f"{name} is not a generative model")
    s = model.sample(3)
    assert s.shape in ((3, 1, 28, 28), (3, 784)) and torch.isfinite(s).all(), s.shape
    if takes_labels(model.sample):
        assert model.sample(4, y=7).shape == (4, 1, 28, 28)
        assert model.sample(2, y=[1, 2]).shape == (2, 1, 28, 28)
        with pytest.raises(ValueError, match='labels'): model.sample(3, y=[1, 2])


@pytest.mark.parametrize('name', NAMES)
def test_rebuilds_from_arch(name):
    model = build(name)
    assert model.arch['name'] == name
    twin = build_arch(model.arch)
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


# Defining modules in an order where none imports a later one, so that each `load` below must import
# its own module: `vae_book.models.cvae` imports `vae`, `gan` imports `encoders` and `cvae`, ...
_ORDER = ['vae_book.models.autoencoder', 'vae_book.losses.elbo', 'vae_book.models.lenet',
          'vae_book.models.vae', 'vae_book.models.encoders', 'vae_book.models.cvae',
          'vae_book.models.gan', 'vae_book.models.latent_models']
_FRESH = """
import json, sys
from vae_book.train import load
from vae_book.core import ARCHS
for path, module, name, total in json.loads(sys.argv[1]):
    first = module not in sys.modules and name not in ARCHS   # nothing of it imported yet
    m = load(path).model
    got = sum(float(v.double().sum()) for v in m.state_dict().values() if v.is_floating_point())
    print(json.dumps([name, first, m.arch['name'], got]))
"""


def test_checkpoints_load_in_a_fresh_process(tmp_path):
    "`load(path)` rebuilds every registered architecture in a new Python with only vae_book.train imported"
    from helpers import run_clean
    from vae_book.core import arch_module
    from vae_book.train import save
    rank = lambda n: _ORDER.index(arch_module(n)) if arch_module(n) in _ORDER else len(_ORDER)
    jobs = []
    for name in sorted(NAMES, key=rank):
        m = build(name); path = save(tmp_path/f'{name}.pt', m)
        total = sum(float(v.double().sum()) for v in m.state_dict().values() if v.is_floating_point())
        jobs.append([str(path), arch_module(name), name, total])
    r = run_clean([sys.executable, '-c', _FRESH, json.dumps(jobs)], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row[0] for row in rows] == [j[2] for j in jobs]
    seen = set()
    for (name, first, built, got), job in zip(rows, jobs):
        assert built == name and math.isclose(got, job[3], rel_tol=1e-9, abs_tol=1e-9), name
        if job[1] in _ORDER and job[1] not in seen:  # the first of its module: load imported it
            assert first, f"{job[1]} was imported before {name}'s checkpoint was loaded"
        seen.add(job[1])


@pytest.mark.parametrize('name', NAMES)
def test_deterministic_under_a_seed(name):
    b = real_images(B)
    def run():
        model = build(name); set_seed(5)
        return [loss(b).loss.item() for _, _, loss in objectives(model)]
    assert run() == run()


@pytest.mark.parametrize('name', NAMES)
def test_log_weights(name):
    "Likelihood models give (k, B) importance weights; their k-sample bound is above the ELBO (up to noise)"
    model, b = build(name), real_images(B)
    if not hasattr(model, 'log_weights'): pytest.skip(f"{name} has no likelihood")
    lw = model.log_weights(b.x, 64, b.y) if takes_labels(model.log_weights) else model.log_weights(b.x, 64)
    assert lw.shape == (64, B) and torch.isfinite(lw).all()
    if not callable(getattr(model, 'loss', None)): return  # a game's loss is no ELBO to compare with
    model.eval(); set_seed(0)
    iw = (torch.logsumexp(lw, 0) - math.log(64)).mean().item()
    assert iw >= -model.loss(b).loss.item() - 5


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize('name', NAMES)
def test_loss_backward_on_cuda(name):
    dev = torch.device('cuda')
    model, b = build(name).to(dev), real_images(B).to(dev)
    for who, params, loss in objectives(model):
        model.zero_grad(set_to_none=True)
        out = loss(b)
        assert out.loss.device.type == 'cuda' and torch.isfinite(out.loss), who
        out.loss.backward()
        assert all(p.grad is not None and p.grad.device.type == 'cuda' for p in params), who
        with torch.autocast('cuda', dtype=torch.bfloat16):  # what `fit` uses on GPUs
            assert torch.isfinite(loss(b).loss), who
    if hasattr(model, 'sample'):
        assert model.sample(3).device.type == 'cuda'
