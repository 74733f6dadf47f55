"""Chapters 4-5 across modules: `LinearGaussian` as an exact oracle for the ELBO, `iwae_bound` and
`metrics.iw_nll`; training and checkpoints through `train`; the gradient estimators' contracts."""
import copy, math

import pytest
import torch

from vae_book.core import set_seed
from vae_book.data import Batch, TensorLoader
from vae_book.estimators import (GradEstimate, reparam_grad, reparameterize, score_function_grad,
                                 score_surrogate)
from vae_book.losses.elbo import LinearGaussian, gaussian_kl, iwae_bound, linear_gaussian, ppca
from vae_book.metrics import iw_nll
from vae_book.train import fit, load, save

D, d = 20, 3


def synthetic(n=2000, seed=0):
    "Draws from a random linear-Gaussian model whose posterior is not diagonal"
    torch.manual_seed(seed)
    true = LinearGaussian(D, d)
    with torch.no_grad():
        true.decoder.weight.copy_(torch.randn(D, d)); true.decoder.bias.copy_(torch.randn(D))
        true.log_sigma2.fill_(math.log(0.3))
    return true.sample(n), true


@pytest.fixture(scope='module')
def fitted():
    x, _ = synthetic()
    rot = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(1)))[0]
    return x, ppca(x, d), ppca(x, d, rotation=rot)


def test_ppca_is_exact_and_rotation_invariant(fitted):
    x, lg, lg_rot = fitted
    C = lg.W @ lg.W.T + lg.sigma2*torch.eye(D)
    dense = torch.distributions.MultivariateNormal(lg.decoder.bias, C).log_prob(x[:50])
    assert torch.allclose(lg.log_prob(x[:50]), dense, atol=1e-3)
    assert torch.allclose(lg_rot.log_prob(x[:50]), lg.log_prob(x[:50]), atol=1e-3)
    # the ML fit is better than the generating model on its own data, and both are finite
    assert lg.log_prob(x).mean() >= synthetic()[1].log_prob(x).mean() - 1e-3


def test_elbo_bound_tight_and_gap_is_kl(fitted):
    x, lg, lg_rot = fitted
    x = x[:200].double()
    lg, lg_rot = copy.deepcopy(lg).double(), copy.deepcopy(lg_rot).double()
    with torch.no_grad():
        assert torch.allclose(lg.elbo(x), lg.log_prob(x), atol=1e-6)    # exact posterior: tight
        lp, e = lg_rot.log_prob(x), lg_rot.elbo(x)
        assert (e < lp - 1e-4).all()                                     # diagonal q: a gap
        mu, logvar = lg_rot.encoder(x)
        q = torch.distributions.MultivariateNormal(mu, torch.diag_embed(logvar.exp()))
        kl = torch.distributions.kl_divergence(q, lg_rot.posterior(x))
        assert torch.allclose(lp - e, kl, atol=1e-6)                     # the gap is the KL
        # any other q is worse
        assert (lg_rot.elbo(x, mu + 0.1, logvar) < e).all()


def test_iw_nll_converges_to_exact_nll(fitted):
    x, _, lg_rot = fitted
    loader = TensorLoader(x[:300], torch.zeros(300, dtype=torch.long), batch_size=100)
    with torch.no_grad(): exact = -lg_rot.log_prob(x[:300]).mean().item()
    neg_elbo = -lg_rot.elbo(x[:300]).mean().item()
    set_seed(0)
    nll_1 = iw_nll(lg_rot, loader, k=1, progress=False)
    nll_k = iw_nll(lg_rot, loader, k=2000, progress=False)
    assert neg_elbo - exact > 0.05                    # there is a gap to close
    assert abs(nll_1 - neg_elbo) < 0.2*(neg_elbo - exact) + 0.05
    assert exact - 0.02 < nll_k < exact + 0.3*(neg_elbo - exact)


def test_iwae_monotone_in_k(fitted):
    x, _, lg_rot = fitted
    set_seed(0)
    with torch.no_grad():
        lk = [torch.stack([iwae_bound(lg_rot.log_weights(x[:500], k)) for _ in range(800 // k)])
              .mean().item() for k in (1, 4, 32)]
        lp = lg_rot.log_prob(x[:500]).mean().item()
    assert all(a < b for a, b in zip(lk, lk[1:])), lk
    assert lk[-1] < lp + 0.01


def test_linear_gaussian_trains_and_checkpoints(tmp_path):
    x, _ = synthetic(n=1024)
    loader = TensorLoader(x, torch.zeros(len(x), dtype=torch.long), batch_size=128, shuffle=True)
    model = linear_gaussian(D, d)
    with torch.no_grad(): before = model.elbo(x).mean().item()
    hist = fit(model, loader, epochs=15, lr=3e-2, progress=False)
    with torch.no_grad():
        after, lp = model.elbo(x).mean().item(), model.log_prob(x).mean().item()
        best = ppca(x, d).log_prob(x).mean().item()
    assert after > before + 10 and hist[-1]['train_loss'] < hist[0]['train_loss']
    assert after <= lp + 1e-4 and lp <= best + 1e-3          # a bound, and ML is the ceiling
    ck = load(save(tmp_path / 'lg.pt', model), None)
    with torch.no_grad(): assert torch.allclose(ck.model.log_prob(x[:10]), model.log_prob(x[:10]))


def test_linear_gaussian_rejects_wrong_width():
    with pytest.raises(ValueError, match='features per example'): LinearGaussian(D, d).log_prob(torch.zeros(2, D + 1))
    with pytest.raises(ValueError, match='latent_dim'): ppca(torch.randn(10, D), 0)


def quad(z): return (z - 2.0).pow(2).sum(-1)


def test_estimators_unbiased_batched():
    "Batch of (B, latent) parameters: every coordinate's mean gradient matches the exact one"
    set_seed(0)
    mu = torch.tensor([[0.0, 1.0], [3.0, -1.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -1.0], [0.5, 0.2]], dtype=torch.float64)
    exact_mu, exact_lv = 2*(mu - 2.0), logvar.exp()        # E f = sum (mu - c)^2 + sigma^2
    for est in (reparam_grad(quad, mu, logvar, 50_000), score_function_grad(quad, mu, logvar, 50_000),
                score_function_grad(quad, mu, logvar, 50_000, baseline='loo')):
        assert isinstance(est, GradEstimate) and est.mu.shape == (50_000, 2, 2)
        for g, exact in ((est.mu, exact_mu), (est.logvar, exact_lv)):
            se = g.std(0)/math.sqrt(len(g))
            assert ((g.mean(0) - exact).abs() < 4*se + 1e-9).all()


def test_reparam_has_lower_variance_than_score():
    set_seed(0)
    mu, logvar = torch.zeros(4, 1), torch.zeros(4, 1)
    vr = reparam_grad(quad, mu, logvar, 20_000).mu.var(0)
    vs = score_function_grad(quad, mu, logvar, 20_000, baseline='loo').mu.var(0)
    assert (vs > 2*vr).all()


def test_score_surrogate_value_and_gradient():
    theta = torch.tensor([0.5, -0.3], requires_grad=True)
    fz, log_q = torch.tensor([[1.0, 2.0], [3.0, 5.0], [2.0, 2.0]]), theta*torch.ones(3, 2)
    s = score_surrogate(fz, log_q, 'loo')
    assert torch.equal(s.detach(), fz)                       # value is f(z)
    s.sum().backward()
    loo = (fz.sum(0) - fz)/2
    assert torch.allclose(theta.grad, (fz - loo).sum(0))     # sum_i (f_i - b_i) dlog q_i/dtheta
    with pytest.raises(ValueError, match='n >= 2'): score_surrogate(fz[:1], log_q[:1], 'loo')
    with pytest.raises(ValueError, match="'loo'"): score_surrogate(fz, log_q, 'mean')


def test_estimator_errors():
    mu = torch.zeros(3)
    with pytest.raises(ValueError, match='use score_function_grad'):
        reparam_grad(lambda z: (z > 0).float().sum(-1), mu, mu, 10)
    with pytest.raises(ValueError, match='must map samples'): reparam_grad(lambda z: z, mu, mu, 10)
    with pytest.raises(ValueError, match='positive int'): score_function_grad(quad, mu, mu, 0)
    with pytest.raises(ValueError, match='differ in shape'): reparameterize(mu, torch.zeros(2))


def test_determinism_and_dtype():
    mu, logvar = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    set_seed(3); a = reparameterize(mu, logvar, n=4)
    set_seed(3); b = reparameterize(mu, logvar, n=4)
    assert torch.equal(a, b) and a.dtype == torch.float64 and a.shape == (4, 5, 3)
    set_seed(3); g1 = score_function_grad(quad, mu, logvar, 100)
    set_seed(3); g2 = score_function_grad(quad, mu, logvar, 100)
    assert torch.equal(g1.mu, g2.mu)


@pytest.mark.cuda
def test_on_cuda():
    dev = torch.device('cuda')
    mu, logvar = torch.zeros(4, 2, device=dev), torch.zeros(4, 2, device=dev)
    assert reparameterize(mu, logvar, n=3).device.type == 'cuda'
    g = reparam_grad(quad, mu, logvar, 100)
    assert g.mu.device.type == 'cuda' and gaussian_kl(mu, logvar).device.type == 'cuda'
    x, _ = synthetic(n=256)
    lg = ppca(x.to(dev), d)
    assert lg.W.device.type == 'cuda' and torch.isfinite(lg.log_prob(x[:8].to(dev))).all()
    assert torch.isfinite(lg.log_weights(x[:8].to(dev), 16)).all()


def _trained_mlp_vae(n=64):
    "A small MLP VAE fitted a little to `n` binary blob images: logits far from 0, as in practice"
    from vae_book.models.vae import mlp_vae
    set_seed(0)
    g = torch.linspace(-1, 1, 28)
    c = torch.rand(n, 2, 1, 1)*1.2 - 0.6
    c = c.view(n, 2, 1, 1)
    r2 = (g[:, None] - c[:, 0])**2 + (g[None, :] - c[:, 1])**2      # (n, 28, 28)
    x = (r2 < 0.2).float()[:, None]
    vae = mlp_vae(hidden_dim=64, latent_dim=4)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad(); vae.loss(Batch(x, torch.zeros(n, dtype=torch.long))).loss.backward()
        opt.step()
    return vae.eval(), TensorLoader(x, torch.zeros(n, dtype=torch.long), 32)


def test_iw_nll_fused_paths_agree_with_the_generic_one(monkeypatch):
    import vae_book.metrics as metrics
    vae, loader = _trained_mlp_vae()
    generic = lambda x, y, k: vae.log_weights(x, k)
    run = lambda **kw: (set_seed(1), iw_nll(vae, loader, k=400, progress=False, **kw))[1]
    want = run(log_weights=generic)
    assert want > 20, want                         # a real model: hundreds of nats would fail too
    assert abs(run() - want) < 1e-3                              # fused fp32: float rounding
    assert abs(run(precision='bf16') - want) < 0.05              # bf16 last layer
    assert abs(run(precision='auto') - want) < 0.05
    monkeypatch.setattr(metrics, 'bf16_native', lambda: False)   # an AVX2-only CPU: exact path
    assert metrics.nll_path(vae, 'auto') == 'fused-fp32'
    with pytest.raises(ValueError, match='bf16'):
        iw_nll(vae, loader, k=4, log_weights=generic, precision='bf16', progress=False)


def test_fused_log_weights_match_a_float64_recomputation():
    "The fused fp32 log weights (per-pixel terms >= 0, block products of sigmoids) vs float64"
    from vae_book.losses.elbo import log_prior_ratio
    from vae_book.metrics import _fused_log_weights
    vae, loader = _trained_mlp_vae()
    with torch.no_grad():
        for lin in (vae.decoder.body[0], vae.decoder.to_logits):  # logits up to about +-100
            lin.weight.mul_(3)
        x = next(iter(loader)).x[:6]
        set_seed(3); lw = _fused_log_weights(vae, x, 50)(50)                     # (50, 6)
        set_seed(3); mu, logvar = vae.encode(x)
        z = reparameterize(mu, logvar, n=50).double()                           # the same z
        d = vae.double()
        l = d.decoder(z.flatten(0, 1)).view(50, 6, -1)
        xf = x.flatten(1).double()
        want = ((xf*l - torch.nn.functional.softplus(l)).sum(-1)
                + log_prior_ratio(z, mu.double(), logvar.double()))
    assert l.abs().max() > 20                                   # large logits were exercised
    err = (lw.double() - want).abs()
    assert err.max() < 5e-4, err.max()          # per-pixel sums of terms >= 0: no cancelling
    assert (lw.double().logsumexp(0) - want.logsumexp(0)).abs().max() < 5e-4


def test_bf16_native_honours_onednn_isa_limits():
    "An AVX2-only CPU emulated with ONEDNN_MAX_CPU_ISA gets the exact fp32 NLL path under 'auto'"
    import os, subprocess, sys
    code = "from vae_book.metrics import bf16_native; print(bf16_native())"
    env = {**os.environ, 'ONEDNN_MAX_CPU_ISA': 'AVX2', 'ATEN_CPU_CAPABILITY': 'avx2'}
    r = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-1] == 'False'
