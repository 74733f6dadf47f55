"""vae_book.widgets: each explorer redraws what its controls say, on small untrained models (no data needed).

The class picker is tested against a minimal conditional decoder defined here (any model with
`decode(z, y)` and `latent_dim`), and against vae_book.models.cvae when that module is present."""
import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vae_book.core import set_seed
from vae_book.models.vae import mlp_vae
from vae_book.viz import encode_mean, decode, interpolate_latent, to_images
from vae_book.widgets import (png_bytes, LatentPlane, interpolation_explorer, traversal_explorer, class_explorer,
                              InterpolationExplorer)


def _png(b): return np.asarray(Image.open(io.BytesIO(b)))


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(60, 1, 28, 28, generator=g) > .7).float()
    return x, torch.arange(60) % 3


@pytest.fixture(scope="module")
def vae6():
    set_seed(1); return mlp_vae(latent_dim=6, hidden_dim=32).eval()


def test_png_bytes():
    a = np.zeros((28, 28), np.float32); a[3, 5] = 1
    im = _png(png_bytes(a, scale=4))
    assert im.shape == (112, 112) and im[12:16, 20:24].min() == 255 and im[0:4, 0:4].max() == 0


def test_latent_plane_draws_point_where_asked(vae6, data):
    x, y = data
    pl = LatentPlane(encode_mean(vae6, x), y)
    assert pl.labels[0].startswith("PC1")
    p = pl.project(encode_mean(vae6, x[:1]))[0]
    im = _png(pl.render(point=p))
    u, v = pl.to_px(p[None])[0].round().astype(int)
    assert tuple(im[v, u]) == (220, 20, 60)
    assert tuple(_png(pl.render())[v, u]) != (220, 20, 60)
    with pytest.raises(ValueError): LatentPlane(None, latent_dim=5)


def test_interpolation_explorer(vae2, data):
    x, y = data
    ex = interpolation_explorer(vae2, x, y, ["a", "b", "c"], i1=0, i2=1)
    assert isinstance(ex, InterpolationExplorer)
    img0 = ex.image.value
    ex.alpha.value = 1.0
    # the decoded image is the decoder's output at the second image's code
    want = to_images(decode(vae2, encode_mean(vae2, x[1:2])))[0]
    np.testing.assert_allclose(_png(ex.image.value)[::6, ::6], np.round(want*255), atol=1)
    assert ex.image.value != img0
    ex.alpha.value = 0.5
    z = interpolate_latent(ex.z1, ex.z2, torch.tensor([.5]))
    np.testing.assert_allclose(_png(ex.image.value)[::6, ::6], np.round(to_images(decode(vae2, z))[0]*255), atol=1)
    # slerp changes the midpoint
    mid_lin = ex.image.value; ex.method.value = "slerp"
    assert ex.image.value != mid_lin
    # class means
    ex.mode.value = "classes"; ex.c1.value, ex.c2.value = 2, 0
    torch.testing.assert_close(ex.z1, encode_mean(vae2, x[y == 2]).mean(0), atol=1e-5, rtol=1e-5)
    assert ex.pick.children[0] is ex.c1
    ex.mode.value = "images"; ex.i2.value = 5
    torch.testing.assert_close(ex.z2, encode_mean(vae2, x[5:6])[0], atol=1e-5, rtol=1e-5)
    assert ex.last_ms > 0


class Judge(nn.Module):
    "says class 1 when the image is mostly bright"
    def forward(self, x): m = x.flatten(1).mean(1, keepdim=True); return torch.cat([-10*m, 10*m - 5], 1)


def test_interpolation_judge(vae2, data):
    x, y = data
    ex = interpolation_explorer(vae2, x, y, ["dark", "bright", "c"], judge=Judge())
    assert "judge says" in ex.info.value and ("dark" in ex.info.value or "bright" in ex.info.value)


def test_traversal_explorer(vae6, data):
    x, y = data
    tr = traversal_explorer(vae6, x=x, y=y)
    assert len(tr.sliders) == 6
    before = tr.image.value; pv = tr.point_view.value
    tr.sliders[4].value = 2.5
    assert tr.z[4] == 2.5 and tr.image.value != before and tr.point_view.value != pv
    z = torch.zeros(6); z[4] = 2.5
    np.testing.assert_allclose(_png(tr.image.value)[::6, ::6], np.round(to_images(decode(vae6, z))[0]*255), atol=1)
    tr.set_z(torch.full((6,), -7.))
    assert tr.z.tolist() == [-3.] * 6
    tr.index.value = 3; tr.from_image.click()
    torch.testing.assert_close(tr.z, encode_mean(vae6, x[3:4])[0], atol=1e-5, rtol=1e-5)
    tr.zero.click(); assert tr.z.abs().sum() == 0
    tr.draw.click(); assert tr.z.abs().sum() > 0
    # only some dims get sliders; the others stay at z0
    tr2 = traversal_explorer(vae6, dims=[1], z0=torch.arange(6.)/10)
    tr2.sliders[0].value = 1.
    assert torch.allclose(tr2.z, torch.tensor([0., 1., .2, .3, .4, .5]))
    assert tr2.plane is None  # no codes and D > 2: no plane


class CondDecoder(nn.Module):
    "A minimal conditional model with the class picker's interface: latent_dim and decode(z, y)"
    def __init__(self, latent_dim=3, n_classes=4):
        super().__init__(); self.latent_dim = latent_dim
        self.emb = nn.Embedding(n_classes, 784); self.lin = nn.Linear(latent_dim, 784)
        self.calls = []
    def decode(self, z, y):
        self.calls.append(y.clone())
        return torch.sigmoid(self.lin(z) + self.emb(y)).view(-1, 1, 28, 28)


def test_class_explorer_minimal_conditional():
    set_seed(0); m = CondDecoder()
    ce = class_explorer(m, ["w", "x", "y", "z"], n=5, seed=1)
    assert m.calls[-1].tolist() == [0]*5
    before = ce.image.value; ce.label.value = 3
    assert m.calls[-1].tolist() == [3]*5 and ce.image.value != before
    torch.testing.assert_close(ce.images(), decode(m, ce.codes, 3))
    ce.temperature.value = 0.
    imgs = ce.images(); torch.testing.assert_close(imgs[0], imgs[4])
    ce.temperature.value = 1.; c0 = ce.codes.clone(); ce.resample.click()
    assert not torch.equal(c0, ce.codes)
    assert _png(ce.image.value).shape == (3*28, 3*(5*29 - 1))
    assert len(class_explorer(m, 12, n=2).label.options) == 12  # many classes: a dropdown


def test_class_explorer_on_book_cvae():
    import inspect
    from vae_book.core import ARCHS
    import vae_book.models.cvae as cvae
    names = [n for n, f in ARCHS.items() if f.__module__ == cvae.__name__]
    assert names, "vae_book.models.cvae registers no architecture"
    sig = inspect.signature(ARCHS[names[0]])
    kw = {k: v for k, v in dict(latent_dim=2, hidden_dim=16, n_classes=10).items() if k in sig.parameters}
    set_seed(0); m = ARCHS[names[0]](**kw).eval()
    ce = class_explorer(m, 10, n=4)
    a = ce.images(); ce.label.value = 7; b = ce.images()
    assert a.shape == (4, 1, 28, 28) and not torch.allclose(a, b)
