"""The chapter-6 `VAE` and `mlp_vae`: shapes, gradients, training, determinism, checkpoints, errors."""

import pytest
import torch
from torch import nn

from vae_book.core import set_seed
from vae_book.data import Batch
from vae_book.losses.elbo import iwae_bound
from vae_book.losses.recon import bernoulli_nll, gaussian_nll
from vae_book.metrics import iw_nll
from vae_book.models.vae import VAE, VAEOutput, mlp_vae
from vae_book.train import TrainConfig, fit, load, save

B, D = 8, 4


def batch(b=B, seed=0, binary=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, 28, 28, generator=g)
    return Batch(torch.bernoulli(x, generator=g) if binary else x, torch.zeros(b, dtype=torch.long))


@pytest.mark.parametrize('likelihood', ['bernoulli', 'gaussian'])
def test_shapes_and_fields(likelihood):
    vae, b = mlp_vae(hidden_dim=32, latent_dim=D, likelihood=likelihood), batch()
    out = vae(b.x)
    assert isinstance(out, VAEOutput) and out._fields == ('x_hat', 'mu', 'logvar', 'z')
    assert out.x_hat.shape == b.x.shape
    assert out.mu.shape == out.logvar.shape == out.z.shape == (B, D)
    l = vae.loss(b)
    assert l._fields[0] == 'loss' and l.loss.shape == () and torch.isfinite(l.loss)
    assert torch.allclose(l.loss, l.recon + l.kl, atol=1e-4)  # beta=1, no free bits: loss is -ELBO


def test_flat_inputs_work():
    vae = mlp_vae(hidden_dim=32, latent_dim=D, out_shape=(784,))
    x = torch.bernoulli(torch.rand(B, 784))
    assert vae(x).x_hat.shape == (B, 784)
    assert vae.log_weights(x, 3).shape == (3, B)


def test_gradients_flow_through_reparameterize():
    vae, b = mlp_vae(hidden_dim=32, latent_dim=D), batch()
    vae.loss(b).loss.backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the reconstruction term alone reaches the encoder's mean and variance only through the sample z
    vae.zero_grad()
    out = vae(b.x); bernoulli_nll(out.x_hat, b.x).mean().backward()
    assert vae.encoder.to_mu.weight.grad.abs().sum() > 0
    assert vae.encoder.to_logvar.weight.grad.abs().sum() > 0


def test_overfits_one_batch():
    set_seed(0)
    vae, b = mlp_vae(hidden_dim=64, latent_dim=D), batch(16)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    first = vae.loss(b).loss.item()
    for _ in range(100):
        opt.zero_grad(); l = vae.loss(b); l.loss.backward(); opt.step()
    vae.eval(); set_seed(1)
    last = vae.loss(b).loss.item()
    assert first > 500 and last < 0.75*first, (first, last)  # 784*log 2 = 543 at the start


def test_deterministic_under_a_seed():
    def run():
        set_seed(3); vae = mlp_vae(hidden_dim=32, latent_dim=D)
        data = [batch(16, seed=s) for s in range(3)]
        fit(vae, data, TrainConfig(epochs=2, batch_size=None, progress=False, seed=3))
        set_seed(4)
        return [p.detach().clone() for p in vae.parameters()], vae.sample(5)
    (p1, s1), (p2, s2) = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(p1, p2)) and torch.equal(s1, s2)


def test_sample_interpolate_reconstruct():
    vae, b = mlp_vae(hidden_dim=32, latent_dim=D), batch()
    s = vae.sample(5)
    assert s.shape == (5, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert vae.reconstruct(b.x).shape == b.x.shape
    for slerp in (False, True):
        path = vae.interpolate(b.x[0], b.x[1], steps=6, slerp=slerp)
        assert path.shape == (6, 1, 28, 28)
        ends = vae.reconstruct(b.x[:2])  # the path starts and ends at the two reconstructions
        assert torch.allclose(path[0], ends[0], atol=1e-5) and torch.allclose(path[-1], ends[1], atol=1e-5)
    gauss = mlp_vae(hidden_dim=32, latent_dim=D, likelihood='gaussian')
    assert gauss.sample(3).shape == (3, 1, 28, 28)


@pytest.mark.parametrize('likelihood', ['bernoulli', 'gaussian'])
def test_log_weights_match_the_losses(likelihood):
    "The broadcast log p(x|z) in `log_weights` equals the library's NLLs, and L_k never falls below the ELBO"
    set_seed(0)
    vae, b = mlp_vae(hidden_dim=32, latent_dim=D, likelihood=likelihood), batch(binary=likelihood == 'bernoulli')
    set_seed(1); lw = vae.log_weights(b.x, 7)
    assert lw.shape == (7, B)
    set_seed(1)  # the same z: rebuild every term by hand
    mu, logvar = vae.encode(b.x)
    z = mu + (0.5*logvar).exp()*torch.randn((7, B, D))
    x_hat = vae.decoder(z.flatten(0, 1))
    nll = {'bernoulli': bernoulli_nll, 'gaussian': gaussian_nll}[likelihood]
    log_px = -nll(x_hat, b.x.repeat(7, 1, 1, 1)).view(7, B)
    p, q = torch.distributions.Normal(0., 1.), torch.distributions.Normal(mu, (0.5*logvar).exp())
    want = log_px + p.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
    assert torch.allclose(lw, want, atol=1e-3, rtol=1e-5)


def test_iw_nll_is_below_the_negative_elbo():
    set_seed(0)
    vae, b = mlp_vae(hidden_dim=32, latent_dim=D), batch(64)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    for _ in range(30):
        opt.zero_grad(); vae.loss(b).loss.backward(); opt.step()
    set_seed(1)
    neg_elbo = -vae.log_weights(b.x, 200).mean().item()  # the ELBO averaged over 200 samples
    nll = iw_nll(vae, [b], k=200, progress=False)
    assert nll < neg_elbo - 0.1, (nll, neg_elbo)
    assert (iwae_bound(vae.log_weights(b.x, 50)) <= 0).all()  # log p(x) of binary images is <= 0


def test_beta_free_bits_and_warmup():
    b = batch()
    set_seed(0); plain = mlp_vae(hidden_dim=32, latent_dim=D)
    set_seed(0); heavy = mlp_vae(hidden_dim=32, latent_dim=D, beta=4.0)
    set_seed(5); l1 = plain.loss(b)
    set_seed(5); l4 = heavy.loss(b)
    assert torch.allclose(l4.loss, l4.recon + 4*l4.kl, atol=1e-3) and torch.allclose(l1.kl, l4.kl)
    # free bits: a KL below the allowance costs a constant, so it gets no gradient
    fb = mlp_vae(hidden_dim=32, latent_dim=D, free_bits=100.0)
    l = fb.loss(b); l.loss.backward()
    assert torch.allclose(l.loss, l.recon + 100.0*D, atol=1e-3)
    assert fb.encoder.to_logvar.weight.grad.abs().sum() > 0  # still trained through the reconstruction
    fb.eval()
    with torch.no_grad(): le = fb.loss(b)
    assert torch.allclose(le.loss, le.recon + le.kl, atol=1e-3)  # evaluation reports the true -ELBO
    # warm-up: the KL weight climbs 0 -> beta over `warmup` training steps, then stays
    wu = mlp_vae(hidden_dim=32, latent_dim=D, beta=2.0, warmup=4)
    seen = []
    for _ in range(6):
        seen.append(float(wu.kl_weight())); wu.loss(b)
    assert seen == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    wu.eval()
    with torch.no_grad(): wu.loss(b)  # evaluation does not advance it
    assert int(wu.step) == 6 and float(wu.kl_weight()) == 2.0


def test_checkpoint_round_trip(tmp_path):
    set_seed(0)
    vae = mlp_vae(hidden_dim=32, latent_dim=D, beta=2.0, warmup=10)
    fit(vae, [batch(16)], TrainConfig(epochs=1, batch_size=None, progress=False))
    p = save(tmp_path/'vae.pt', vae, TrainConfig(epochs=1), {'test_nll': 123.4}, 'python train.py')
    ck = load(p)  # rebuilt by name from the architecture record
    assert isinstance(ck.model, VAE) and ck.model.arch == vae.arch
    assert ck.model.beta == 2.0 and ck.model.warmup == 10
    assert ck.metrics == {'test_nll': 123.4} and ck.command == 'python train.py'
    for a, b in zip(vae.state_dict().values(), ck.model.state_dict().values()): assert torch.equal(a, b)
    x = batch().x
    assert torch.equal(vae.reconstruct(x), ck.model.reconstruct(x))
    with pytest.raises(ValueError, match='different architecture'):
        load(p, mlp_vae(hidden_dim=32, latent_dim=D + 1))


def test_clear_errors():
    vae = mlp_vae(hidden_dim=32, latent_dim=D)
    with pytest.raises(ValueError, match='784 features'): vae(torch.rand(B, 1, 32, 32))
    with pytest.raises(ValueError, match='784 features'): vae.loss(Batch(torch.rand(B, 10), torch.zeros(B)))
    with pytest.raises(ValueError, match='decoder expects 4'): vae.decode(torch.randn(3, D + 1))
    with pytest.raises(ValueError, match='n must be'): vae.sample(0)
    with pytest.raises(ValueError, match='k must be'): vae.log_weights(batch().x, 0)
    with pytest.raises(ValueError, match='differ in shape'): vae.interpolate(torch.rand(1, 28, 28), torch.rand(784))
    with pytest.raises(ValueError, match='steps'): vae.interpolate(torch.rand(1, 28, 28), torch.rand(1, 28, 28), 1)
    with pytest.raises(ValueError, match='likelihood'): mlp_vae(likelihood='poisson')
    with pytest.raises(ValueError, match='beta'): mlp_vae(beta=-1.0)
    with pytest.raises(ValueError, match='latent_dim'): VAE(nn.Identity(), nn.Identity(), latent_dim=0)

    class BadEncoder(nn.Module):
        def forward(self, x): return x.flatten(1)[:, :D]  # forgets logvar
    with pytest.raises(TypeError, match=r'\(mu, logvar\)'):
        VAE(BadEncoder(), vae.decoder, D)(batch().x)
