"""Chapter 10's models (vae_book.models.latent_models) in the book's protocol: each trains with `fit`,
saves with `save`, and loads in a fresh interpreter (nothing imported first) into a model that samples
exactly what the original samples."""
import json, subprocess, sys, textwrap

import pytest
import torch

from vae_book.core import set_seed
from vae_book.data import Batch, TensorLoader
from vae_book.train import fit, save
from vae_book.models.vae import mlp_vae
from vae_book.models.latent_models import (FlowPrior, GaussianMixture, attach_prior, gmm_em,
                                           prior_vae, two_layer_vae, vq_vae)

N, LATENT = 64, 4


def _images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 1, 28, 28, generator=g)
    return TensorLoader(x, torch.zeros(N, dtype=torch.long), 32, shuffle=True, binarize=True)


def _codes():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(N, LATENT, generator=g) * torch.tensor([2., 1., .5, .1])
    return TensorLoader(z, torch.zeros(N, dtype=torch.long), 32, shuffle=True)


def _prior_vae(prior):
    "A small VAE trained by `fit`, with `prior` trained by `fit` on its codes, made one model"
    vae = mlp_vae(latent_dim=LATENT, hidden_dim=16)
    fit(vae, _images(), epochs=1, progress=False)
    z = torch.cat([vae.encode(x)[0].detach() for x in _images().x.split(32)])
    fit(prior, TensorLoader(z, torch.zeros(N, dtype=torch.long), 32), epochs=1, progress=False)
    return attach_prior(vae, prior)


# name -> (builder, training data); every model is trained for one epoch (two steps) by `fit`
MODELS = {
    'prior_vae_flow': (lambda: _prior_vae(FlowPrior(LATENT, hidden_dim=16, steps=4)), _images),
    'prior_vae_gmm': (lambda: _prior_vae(GaussianMixture(3, LATENT)), _images),
    'vq_vae': (lambda: vq_vae(n_codes=8, code_dim=4, channels=4), _images),
    'vq_vae_ema_reseed': (lambda: vq_vae(n_codes=8, code_dim=4, channels=4, ema=True,
                                         reseed_every=1), _images),
    'two_layer_vae': (lambda: two_layer_vae(hidden_dim=16, top_hidden=8, top_dim=3), _images),
}

# a fresh interpreter: only `vae_book.train.load`, which imports the module the checkpoint names
CHILD = textwrap.dedent("""
    import json, sys, torch
    from vae_book.train import load
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        m = load(path).model.eval()
        torch.manual_seed(0)
        out[name] = m.sample(3).tolist()
    print(json.dumps(out))
""")


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp, models, paths = tmp_path_factory.mktemp('ch10'), {}, {}
    for name, (build, data) in MODELS.items():
        set_seed(0); m = build()
        before = {k: v.clone() for k, v in m.state_dict().items()}
        h = fit(m, data(), epochs=1, progress=False)
        assert len(h) == 1 and h.last['train_loss'] == h.last['train_loss'], name  # not NaN
        assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items()), name
        models[name] = m.eval(); paths[name] = str(save(tmp/f'{name}.pt', m))
    return models, paths


@pytest.mark.parametrize('name', list(MODELS))
def test_protocol(trained, name):
    m = trained[0][name]
    x = _images().x[:8].bernoulli()
    out = m.loss(Batch(x, torch.zeros(8, dtype=torch.long)))
    assert out._fields[0] == 'loss' and out.loss.dim() == 0 and torch.isfinite(out.loss)
    s = m.sample(3)
    assert tuple(s.shape) == (3, 1, 28, 28) and torch.isfinite(s).all()
    assert 0 <= s.min() and s.max() <= 1                          # Bernoulli means


def test_load_in_a_fresh_process_samples_the_same(trained):
    models, paths = trained
    r = subprocess.run([sys.executable, '-c', CHILD, json.dumps(paths)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(got) == set(MODELS)
    for name, m in models.items():
        torch.manual_seed(0)
        torch.testing.assert_close(torch.tensor(got[name]), m.sample(3), atol=1e-5, rtol=1e-5,
                                   msg=name)


def test_two_layer_vae_bounds_tighten_with_k():
    "IWAE: on an untrained model, the mean of L_k over many draws grows with k (Burda et al. 2015)"
    set_seed(0)
    m = two_layer_vae(hidden_dim=16, top_hidden=8, top_dim=3)
    x = torch.rand(4, 1, 28, 28).bernoulli()
    with torch.no_grad():
        lw = m.log_weights(x, 4000)                                  # (4000, 4)
        l1 = lw.mean(0)                                              # E[L_1]
        l100 = (lw.view(40, 100, 4).logsumexp(1) - torch.log(torch.tensor(100.))).mean(0)
    assert (l100 > l1).all()


def test_gmm_em_fits_what_it_was_given():
    "EM on 2-D codes: its log-likelihood never falls, and beats the single fitted Gaussian"
    set_seed(0)
    z = torch.cat([torch.randn(200, 2)*0.3 + c for c in torch.tensor([[-3., 0], [3., 0]])])
    g = GaussianMixture(2, 2); ll = gmm_em(g, z, seed=0)
    assert all(b >= a - 1e-5 for a, b in zip(ll, ll[1:]))
    one = GaussianMixture(1, 2); gmm_em(one, z, seed=0)
    assert g.log_prob(z).mean() > one.log_prob(z).mean() + 1


@pytest.mark.parametrize('prior', [GaussianMixture(3, LATENT), FlowPrior(LATENT, hidden_dim=16)])
def test_priors_train_on_vectors_with_fit(prior):
    "The priors are parts (not registered), but follow the protocol on (N, dim) vectors"
    before = [p.clone() for p in prior.parameters()]
    h = fit(prior, _codes(), epochs=2, progress=False)
    assert h.last['train_loss'] == h.last['train_loss']
    assert any(not torch.equal(a, b) for a, b in zip(before, prior.parameters()))
    assert prior.sample(5).shape == (5, LATENT)


def test_prior_vae_trains_only_the_prior():
    set_seed(0)
    m = prior_vae({'name': 'mlp_vae', 'kwargs': {'latent_dim': LATENT, 'hidden_dim': 16}},
                  prior='gmm', n_components=3)
    vae0 = {k: v.clone() for k, v in m.vae.state_dict().items()}
    prior0 = {k: v.clone() for k, v in m.prior.state_dict().items()}
    fit(m, _images(), epochs=1, progress=False)
    assert all(torch.equal(vae0[k], v) for k, v in m.vae.state_dict().items())
    assert any(not torch.equal(prior0[k], v) for k, v in m.prior.state_dict().items())
    with pytest.raises(ValueError, match='prior must be one of'): prior_vae(prior='vq')
