"""Chapter 9: `DCGAN`, `VAEGAN` and games trained by `fit`: shapes, finite losses, determinism, gradient routing, clear
errors, checkpoints; and `sharpness` and the comparison helpers."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vae_book.core import set_seed, build_arch
from vae_book.data import Batch, TensorLoader
from vae_book.estimators import reparameterize
from vae_book.losses.elbo import gaussian_kl
from vae_book.metrics import iw_nll
from vae_book.models.lenet import lenet
from vae_book.models.encoders import conv_vae
from vae_book.models.gan import DCGAN, DCDiscriminator, DCGenerator, VAEGANTerms, dcgan, vae_gan
from vae_book.experiments.gan import (checkerboard, comparison_table, hop, loss_tracks_fd,
                                      sample_monitor, score_model, seed_summary, sharpness,
                                      summary_table, trend_to_noise, worst_setback)
from vae_book.train import History, TrainConfig, TrainingError, fit, load, save

L, C = 8, 4  # tiny latent size and width: these tests are about plumbing, not quality


def images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(n, 1, 28, 28, generator=g), 3, 1, 1)  # grey levels in (0, 1)
    return x, torch.randint(0, 10, (n,), generator=g)


def loader(n=64, bs=16):
    return TensorLoader(*images(n), batch_size=bs, shuffle=True)


@pytest.mark.parametrize('batchnorm', [True, False])
def test_dcgan_shapes_and_losses(batchnorm):
    set_seed(0)
    gan, (x, y) = dcgan(L, C, batchnorm=batchnorm), images(8)
    b = Batch(x, y)
    assert gan.generator(torch.randn(8, L)).shape == (8, 1, 28, 28)
    assert gan.discriminator(x).shape == (8,)
    d, g = gan.d_loss(b), gan.g_loss(b)
    assert d._fields[0] == 'loss' and g._fields[0] == 'loss'
    assert torch.isfinite(d.loss) and torch.isfinite(g.loss) and d.loss.shape == g.loss.shape == ()
    assert 0 < d.real < 1 and 0 < d.fake < 1
    s = gan.sample(5)
    assert s.shape == (5, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    assert [p.name for p in gan.players()] == ['d', 'g']


def test_sampling_leaves_batchnorm_stats_alone():
    gan = dcgan(L, C)
    before = {k: v.clone() for k, v in gan.generator.state_dict().items()}
    gan.sample(16)
    assert gan.training
    for k, v in gan.generator.state_dict().items(): assert torch.equal(v, before[k]), k


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match='28, 28'): DCDiscriminator(C)(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r'\(B, 8\)'): DCGenerator(L, C)(torch.randn(2, 3))
    with pytest.raises(ValueError, match='must be > 0'): vae_gan(L, C, gamma=-1.)
    with pytest.raises(TypeError, match=r'no .loss\(batch\) method \(nor .players\(\)\)'):
        fit(nn.Linear(2, 2), loader(), epochs=1)


def run(model_fn, seed=3, **kw):
    set_seed(seed); m = model_fn()
    return m, fit(m, loader(), TrainConfig(epochs=2, lr=5e-4, batch_size=16, seed=seed, progress=False,
                                               device='cpu'), **kw)


def test_fit_game_runs_and_logs_every_step():
    m, h = run(lambda: dcgan(L, C))
    assert isinstance(h, History) and len(h) == 2 and len(h.steps) == 8
    for k in ('train_d_loss', 'train_g_loss', 'train_d_real', 'train_d_fake', 'time'): assert k in h[0], k
    for k in ('d_loss', 'g_loss'): assert all(math.isfinite(v) for v in h.step_col(k))
    assert h.train_time > 0
    assert all(p.requires_grad for p in m.parameters())  # restored after the per-player freezing


def test_fit_game_is_deterministic_on_cpu():
    _, h1 = run(lambda: dcgan(L, C))
    _, h2 = run(lambda: dcgan(L, C))
    assert h1.step_col('g_loss') == h2.step_col('g_loss') and h1.step_col('d_loss') == h2.step_col('d_loss')
    _, h3 = run(lambda: dcgan(L, C), seed=4)
    assert h3.step_col('g_loss') != h1.step_col('g_loss')


def test_monitor_does_not_change_the_run():
    judge, real = lenet().eval(), images(200, seed=1)[0]
    _, plain = run(lambda: dcgan(L, C))
    _, watched = run(lambda: dcgan(L, C), monitor=sample_monitor(judge, real, n=150), monitor_every=3)
    assert plain.step_col('g_loss') == watched.step_col('g_loss')
    assert [r['step'] for r in watched.monitor] == [0, 3, 6]
    assert all(abs(sum(r['frac']) - 1) < 1e-5 and math.isfinite(r['fd']) for r in watched.monitor)


def test_only_the_moving_player_gets_gradients():
    gan, b = dcgan(L, C), Batch(*images(8))
    seen = {}
    class Spy(DCGAN):
        def g_loss(self, batch):
            seen['d_frozen'] = not any(p.requires_grad for p in self.discriminator.parameters())
            return super().g_loss(batch)
    spy = Spy(gan.generator, gan.discriminator, L)
    fit(spy, loader(16), epochs=1, batch_size=16, progress=False)
    assert seen['d_frozen']


def test_one_player_model_trains_like_fit():
    set_seed(0); vae = conv_vae(L, C)
    h = fit(vae, (loader(), None), epochs=2, lr=1e-3, batch_size=16, progress=False)
    assert len(h.steps) == 8 and 'train_loss' in h[0] and 'train_kl' in h[0]
    assert h[-1]['train_loss'] < h[0]['train_loss'] + 50


def test_nan_loss_stops_with_a_clear_error():
    class NaNGAN(DCGAN):
        def g_loss(self, batch):
            out = super().g_loss(batch); return out._replace(loss=out.loss*float('nan'))
    gan = NaNGAN(DCGenerator(L, C), DCDiscriminator(C), L)
    with pytest.raises(TrainingError, match=r"loss became nan.* at epoch 1, step 1 \(player 'g'\)") as e:
        fit(gan, loader(), epochs=1, progress=False)
    assert len(e.value.history) == 0
    bad = TensorLoader(torch.full((8, 1, 28, 28), float('nan')), torch.zeros(8, dtype=torch.long), 8)
    with pytest.raises(ValueError, match='NaN'): fit(dcgan(L, C), bad, epochs=1, progress=False)


def test_vae_gan_terms_and_gradient_routing():
    set_seed(0)
    m, b, gamma = vae_gan(L, C, gamma=0.25, feat_scale=3.0), Batch(*images(16)), 0.25
    t = m.g_loss(b)
    assert isinstance(t, VAEGANTerms) and t._fields[0] == 'loss'
    assert all(torch.isfinite(v) for v in t) and t.kl >= 0 and t.feat_nll >= 0 and t.pixel_nll > 0
    for p in m.discriminator.parameters(): p.requires_grad_(False)
    m.zero_grad(); torch.manual_seed(7); m.g_loss(b).loss.backward()
    enc = [p.grad.clone() for p in m.encoder.parameters()]; dec = [p.grad.clone() for p in m.decoder.parameters()]
    # Larsen et al. 2016, Alg. 1: encoder <- grad(KL + L_llike); decoder <- grad(gamma*L_llike + L_GAN)
    torch.manual_seed(7)
    mu, logvar = m.encoder(b.x); z = reparameterize(mu, logvar)
    feat = 0.5*3.0*(m.discriminator.features(torch.sigmoid(m.decoder(z)))
                    - m.discriminator.features(b.x)).pow(2).sum(1).mean()
    zp = torch.randn_like(z)
    lf = m.discriminator(torch.sigmoid(m.decoder(torch.cat([z.detach(), zp]))))
    gan = F.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))
    want_enc = torch.autograd.grad(gaussian_kl(mu, logvar).mean() + feat, list(m.encoder.parameters()),
                                   retain_graph=True)
    want_dec = torch.autograd.grad(gamma*feat + gan, list(m.decoder.parameters()))
    for g, w in zip(enc + dec, list(want_enc) + list(want_dec)): assert torch.allclose(g, w, atol=1e-5)


def test_vae_gan_trains_and_has_a_labelled_nll():
    m, h = run(lambda: vae_gan(L, C))
    for k in ('train_d_loss', 'train_g_loss', 'train_g_kl', 'train_g_feat_nll', 'train_g_gan', 'train_g_pixel_nll'):
        assert k in h[0] and math.isfinite(h[-1][k]), k
    xb = torch.bernoulli(images(32)[0])
    nll = iw_nll(m, TensorLoader(xb, torch.zeros(32, dtype=torch.long), 16), k=4, progress=False)
    assert math.isfinite(nll) and nll > 0 and 'Bernoulli' in m.nll_note
    assert m.sample(3).shape == (3, 1, 28, 28) and m.reconstruct(xb[:3]).shape == (3, 1, 28, 28)


def test_gan_has_no_likelihood():
    with pytest.raises(TypeError, match='log_weights'):
        iw_nll(dcgan(L, C), TensorLoader(*images(8), batch_size=8), k=2, progress=False)


@pytest.mark.parametrize('name, make', [('dcgan', lambda: dcgan(L, C, batchnorm=False)),
                                        ('vae_gan', lambda: vae_gan(L, C, gamma=0.5))])
def test_checkpoints_rebuild_by_name(tmp_path, name, make):
    m = make(); p = save(tmp_path/'m.pt', m)
    m2 = load(p).model
    assert m2.arch == m.arch and m2.arch['name'] == name and type(m2) is type(m)
    for (k, v), (k2, v2) in zip(m.state_dict().items(), m2.state_dict().items()): assert k == k2 and torch.equal(v, v2)
    assert build_arch(m.arch).latent_dim == L


def test_sharpness_orders_blur():
    x = images(32)[0]; x = (x - x.min())/(x.max() - x.min())
    s = [sharpness(x), sharpness(F.avg_pool2d(x, 3, 1, 1)), sharpness(F.avg_pool2d(x, 5, 1, 2))]
    assert s[0].laplacian > s[1].laplacian > s[2].laplacian and s[0].gradient > s[1].gradient > s[2].gradient
    assert sharpness(torch.full((2, 784), .3)).laplacian == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError): sharpness(torch.rand(2, 3, 28, 28))


def test_stability_statistics():
    assert trend_to_noise([10, 9, 8, 7, 6, 5, 4, 3]) == pytest.approx(6.)
    assert trend_to_noise([1, 2]*8) == pytest.approx(0.)
    assert hop([{'frac': [1, 0]}, {'frac': [0, 1]}], start=0) == pytest.approx(1.)
    assert hop([{'frac': [.5, .5]}]*3) == pytest.approx(0.)
    mon = [{'step': s, 'fd': f} for s, f in ((0, 9), (4, 8), (8, 7), (12, 6))]
    assert loss_tracks_fd([5.]*4 + [4.]*4 + [3.]*4, mon) == pytest.approx(1.)
    assert loss_tracks_fd([3.]*4 + [4.]*4 + [5.]*4, mon) == pytest.approx(-1.)
    with pytest.raises(ValueError, match='at least 4 checks'): loss_tracks_fd([1.]*8, mon[:3])
    assert worst_setback([{'fd': f} for f in (700, 100, 90, 120, 80)]) == pytest.approx(120/90 - 1)
    assert worst_setback([{'fd': f} for f in (700, 100, 90, 80)]) < 0


def test_score_and_table():
    set_seed(0); judge, real = lenet().eval(), images(300, seed=2)[0]
    vae, gan = conv_vae(L, C), dcgan(L, C)
    nll = TensorLoader(torch.bernoulli(images(16)[0]), torch.zeros(16, dtype=torch.long), 16)
    rows = [{'model': 'real test images', 'real': True, **score_model(None, judge, real, x=images(300, 3)[0])},
            {'model': 'VAE', 'train_s': 1., **score_model(vae, judge, real, n=300, nll_data=nll, k=2)},
            {'model': 'GAN', 'train_s': 1., **score_model(gan, judge, real, n=300, nll_data=nll, k=2)}]
    assert 'nll' in rows[1] and 'nll' not in rows[2]
    assert score_model(gan, judge, real, n=300) == score_model(gan, judge, real, n=300)  # fixed seed
    assert all(0 <= r[k] <= 1 for r in rows for k in ('precision', 'recall'))
    assert rows[0]['precision'] > rows[2]['precision']  # real images beat an untrained GAN
    t = comparison_table(rows)
    assert t.count('\n') == 4 and 'undefined: no density' in t and '| VAE |' in t


def test_checkerboard_sees_only_grid_locked_patterns():
    x = images(64)[0]
    i, j = torch.arange(28)[:, None], torch.arange(28)
    assert checkerboard(x) < 0.01 and checkerboard(F.avg_pool2d(x, 3, 1, 1)) < 0.01
    assert checkerboard(x*(1 + 0.1*(-1.)**(i + j))) > 0.05
    assert checkerboard(x*(1 + 0.1*(-1.)**i)) > 0.05  # alternating rows count too
    with pytest.raises(ValueError): checkerboard(torch.rand(2, 3, 28, 28))


def test_seed_summary_and_table():
    run = lambda fd, hop_: {'rows': [{'model': 'real', 'real': True, 'fd_lenet': 1.},
                                     {'model': 'GAN', 'fd_lenet': fd, 'covered': 9}],
                            'stability': {'GAN': {'hop': hop_}}}
    s = seed_summary([run(10., .1), run(20., .3), run(30., .2)])
    assert s['GAN']['fd_lenet']['mean'] == pytest.approx(20.) and s['GAN']['fd_lenet']['sd'] == pytest.approx(10.)
    assert s['GAN']['hop']['values'] == pytest.approx([.1, .3, .2]) and s['real']['fd_lenet']['sd'] == 0
    assert 'nll' not in s['GAN']
    t = summary_table(s)
    assert '| GAN | 20.0 ± 10.0 |' in t and '| none |' in t and t.count('\n') == 3


@pytest.mark.cuda
def test_fit_game_on_cuda_with_amp():
    set_seed(0); m = vae_gan(L, C)
    h = fit(m, loader(), epochs=1, batch_size=16, device='cuda', amp=True, progress=False,
                monitor=sample_monitor(lenet().cuda().eval(), images(200)[0], n=150), monitor_every=2)
    assert m.device.type == 'cuda' and all(math.isfinite(v) for v in h.last.values())
    assert len(h.monitor) == 3
