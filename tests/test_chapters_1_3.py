"""Chapters 2–3 across modules: `roc_auc` against its definition, the reconstruction likelihoods against
`torch.distributions` over shapes and dtypes, the denoising autoencoder's train/eval behaviour, and the
`Autoencoder` working with the book's `viz` helpers and `fit`. Shapes, one-batch overfitting, rebuilding
from `.arch` and determinism of `mlp_autoencoder` are covered for every model in tests/test_models.py."""
import math

import pytest
import torch

from vae_book.core import set_seed
from vae_book.data import Batch, TensorLoader
from vae_book.losses.recon import bernoulli_nll, gaussian_nll
from vae_book.models.autoencoder import Autoencoder, MLPDecoder, MLPEncoder, mlp_autoencoder, roc_auc
from vae_book.train import evaluate, fit



def _brute_auc(s, y):
    pos, neg = s[y], s[~y]
    return ((pos[:, None] > neg).double() + 0.5*(pos[:, None] == neg).double()).mean().item()


# ---------------------------------------------------------------- roc_auc
@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('levels', [3, 50, None])  # many ties, some ties, continuous
def test_roc_auc_matches_pairwise_definition(seed, levels):
    g = torch.Generator().manual_seed(seed)
    n = 200 + 37*seed
    s = torch.rand(n, generator=g) if levels is None else torch.randint(0, levels, (n,), generator=g).float()
    y = torch.rand(n, generator=g) < 0.2 + 0.1*seed
    assert roc_auc(s, y) == pytest.approx(_brute_auc(s, y), abs=1e-12)


def test_roc_auc_properties():
    g = torch.Generator().manual_seed(0)
    s, y = torch.randn(500, generator=g), torch.rand(500, generator=g) < 0.3
    a = roc_auc(s, y)
    assert roc_auc(-s, y) == pytest.approx(1 - a, abs=1e-12)           # flipping the score
    assert roc_auc(s, ~y) == pytest.approx(1 - a, abs=1e-12)           # flipping the labels
    assert roc_auc(s.exp()*3 + 1, y) == pytest.approx(a, abs=1e-12)    # rank-based: monotone-invariant
    assert roc_auc(s, y.long()) == pytest.approx(a, abs=1e-12)         # 0/1 ints work like bools
    sep = torch.where(y, s + 100, s)
    assert roc_auc(sep, y) == 1.0
    assert roc_auc(torch.zeros(10), torch.arange(10) % 2) == 0.5


def test_roc_auc_errors():
    with pytest.raises(ValueError, match='need both classes'): roc_auc(torch.rand(5), torch.ones(5))
    with pytest.raises(ValueError, match='scores but'): roc_auc(torch.rand(5), torch.ones(4))
    with pytest.raises(ValueError, match='NaN or inf'): roc_auc(torch.tensor([0., float('nan')]), torch.tensor([0, 1]))


@pytest.mark.cuda
def test_roc_auc_cuda():
    g = torch.Generator().manual_seed(0)
    s, y = torch.randn(300, generator=g), torch.rand(300, generator=g) < 0.4
    assert roc_auc(s.cuda(), y.cuda()) == pytest.approx(roc_auc(s, y), abs=1e-12)
    assert roc_auc(s.cuda(), y) == pytest.approx(roc_auc(s, y), abs=1e-12)  # labels on another device


# ---------------------------------------------------------------- likelihoods
SHAPES = [(4, 784), (4, 1, 28, 28), (3, 3, 8, 8), (1, 5)]


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_bernoulli_nll_oracle(shape, dtype):
    g = torch.Generator().manual_seed(0)
    logits = (4*torch.randn(shape, generator=g)).to(dtype)
    x = torch.bernoulli(torch.full(shape, 0.4), generator=g).to(dtype)
    ref = -torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    out = bernoulli_nll(logits, x)
    assert out.shape == (shape[0],) and out.dtype == dtype
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-4)


def test_bernoulli_nll_is_stable_at_extreme_logits():
    logits = torch.tensor([[-200., 200., -30., 30.]], requires_grad=True)
    x = torch.tensor([[1., 0., 0., 1.]])
    out = bernoulli_nll(logits, x)
    assert torch.isfinite(out).all() and out.item() == pytest.approx(400., rel=1e-5)
    out.sum().backward()
    torch.testing.assert_close(logits.grad, torch.sigmoid(logits.detach()) - x)  # d/dl = sigmoid(l) - x


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('sigma', [0.05, 1.0, 3.0])
def test_gaussian_nll_oracle_and_mse_identity(shape, sigma):
    g = torch.Generator().manual_seed(1)
    mean, x = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    out = gaussian_nll(mean, x, 2*math.log(sigma))
    ref = -torch.distributions.Normal(mean, sigma).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-3)
    D = math.prod(shape[1:])
    sse = (x - mean).pow(2).flatten(1).sum(1)
    torch.testing.assert_close(out, sse/(2*sigma**2) + D/2*math.log(2*math.pi*sigma**2), rtol=1e-4, atol=1e-3)


def test_gaussian_nll_tensor_logvar_broadcasts():
    g = torch.Generator().manual_seed(2)
    mean, x = torch.rand(4, 1, 28, 28, generator=g), torch.rand(4, 1, 28, 28, generator=g)
    per_example = torch.randn(4, 1, 1, 1, generator=g)
    out = gaussian_nll(mean, x, per_example)
    for i in range(4):
        torch.testing.assert_close(out[i], gaussian_nll(mean[i:i+1], x[i:i+1], per_example[i].item())[0])
    per_pixel = torch.randn(1, 28, 28, generator=g)
    ref = -torch.distributions.Normal(mean, (0.5*per_pixel).exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_nll(mean, x, per_pixel), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('fn', [bernoulli_nll, gaussian_nll])
def test_likelihoods_refuse_mismatched_shapes(fn):
    with pytest.raises(ValueError, match='must match'): fn(torch.zeros(4, 784), torch.zeros(4, 1, 28, 28))
    with pytest.raises(ValueError, match='must match'): fn(torch.zeros(1, 784), torch.zeros(4, 784))


# ---------------------------------------------------------------- autoencoder
def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.rand(n, 1, 28, 28, generator=g), torch.zeros(n, dtype=torch.long))


def test_denoising_noise_only_in_training():
    set_seed(0)
    ae, b = mlp_autoencoder(hidden_dim=32, latent_dim=4, noise=0.5), _batch()
    clean = ae.recon_nll(ae(b.x).x_hat, b.x).mean()
    ae.eval()
    assert ae.loss(b).loss.item() == pytest.approx(clean.item(), rel=1e-6)   # eval: clean inputs
    ae.train()
    torch.manual_seed(0); noisy = ae.loss(b).loss
    torch.manual_seed(0); x_in = ae.corrupt(b.x)
    assert noisy.item() == pytest.approx(ae.recon_nll(ae(x_in).x_hat, b.x).mean().item(), rel=1e-6)
    assert not torch.allclose(ae(x_in).x_hat, ae(b.x).x_hat)                # the input really changed
    kept = (x_in != 0).float().sum()/(b.x != 0).float().sum()
    assert 0.45 < kept.item() < 0.55


def test_plain_autoencoder_does_not_corrupt():
    ae, x = mlp_autoencoder(hidden_dim=32, latent_dim=4), _batch().x
    assert torch.equal(ae.corrupt(x), x)


def test_gaussian_autoencoder_decodes_means():
    set_seed(0)
    ae, b = mlp_autoencoder(hidden_dim=32, latent_dim=3, likelihood='gaussian'), _batch()
    z = ae.encode(b.x)
    torch.testing.assert_close(ae.decode(z), ae.decoder(z))                   # no sigmoid
    torch.testing.assert_close(ae.loss(b).loss, gaussian_nll(ae.decoder(z), b.x).mean())


def test_autoencoder_with_a_variational_encoder_uses_the_mean():
    enc, dec = MLPEncoder(hidden_dim=32, latent_dim=3), MLPDecoder(latent_dim=3, hidden_dim=32)
    ae, x = Autoencoder(enc, dec), _batch().x
    torch.testing.assert_close(ae.encode(x), enc(x)[0])
    assert ae.latent_dim == 3


def test_autoencoder_works_with_viz_helpers():
    from vae_book.viz import decode, encode_mean, plot_latent_manifold, plot_latent_scatter
    ae, b = mlp_autoencoder(hidden_dim=32, latent_dim=2), _batch()
    z = encode_mean(ae, b.x)
    assert z.shape == (16, 2) and decode(ae, z).shape == (16, 1, 28, 28)
    assert len(plot_latent_scatter(z, torch.arange(16) % 3).data) == 3
    fig = plot_latent_manifold(ae, n=4, spacing='linear')
    assert fig.data[0].type == 'image'


def test_fit_reduces_reconstruction_loss_of_a_denoising_autoencoder():
    g = torch.Generator().manual_seed(0)
    protos = torch.rand(4, 1, 28, 28, generator=g).round()               # 4 binary "classes"
    idx = torch.randint(0, 4, (512,), generator=g)
    x = (protos[idx] + 0.05*torch.randn(512, 1, 28, 28, generator=g)).clamp(0, 1)
    loader = TensorLoader(x, idx, batch_size=64, shuffle=True)
    set_seed(0)
    ae = mlp_autoencoder(hidden_dim=64, latent_dim=2, noise=0.3)
    before = evaluate(ae, loader)['loss']
    fit(ae, loader, epochs=5, lr=3e-3, progress=False, device='cpu')
    after = evaluate(ae, loader)['loss']
    assert after < 0.7*before, (before, after)
