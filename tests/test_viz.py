"""vae_book.viz: every builder returns a go.Figure whose traces hold what it claims to show.

Uses small untrained models (fast, no data needed); the notebook 00c_viz shows the same on the
pretrained Fashion-MNIST models."""
import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

from vae_book.core import set_seed
from vae_book.models.vae import mlp_vae
from vae_book.train import History
from vae_book.viz import (to_images, png_uri, image_from_uri, tile, plot_images, encode_mean, decode, pca_2d,
                          plot_latent_scatter, latent_grid, plot_latent_manifold, interpolate_latent,
                          plot_interpolation, plot_kl_per_dim, plot_history, interpolation_slider_figure,
                          traversal_slider_figure, class_slider_figure)
from vae_book.metrics import LatentUsage


@pytest.fixture(scope="module")
def vae8():
    set_seed(1); return mlp_vae(latent_dim=8, hidden_dim=32).eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 10


def _img(trace): return image_from_uri(trace.source)


def _size(fig): return len(json.dumps(fig.to_plotly_json(), cls=__import__("plotly").utils.PlotlyJSONEncoder))


def test_png_round_trip_and_shapes():
    a = np.linspace(0, 1, 28*28, dtype=np.float32).reshape(28, 28)
    np.testing.assert_array_equal(image_from_uri(png_uri(a)), np.round(a*255).astype(np.uint8))
    assert to_images(torch.rand(3, 784)).shape == (3, 28, 28)
    assert to_images(torch.rand(28, 28)).shape == (1, 28, 28)
    assert to_images(torch.rand(2, 1, 5, 7)).shape == (2, 5, 7)
    assert to_images(torch.full((1, 4, 4), 7.)).max() == 1  # clipped
    assert to_images(torch.rand(2, 3, 4, 4)).shape == (2, 4, 4, 3)  # RGB: channels last
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3 \\(RGB\\)"): to_images(torch.rand(2, 2, 4, 4))
    assert png_uri(np.zeros((2, 3, 3))).startswith("data:image/png")  # a 2x3 RGB image
    with pytest.raises(ValueError): png_uri(np.zeros((2, 3, 3, 3, 3)))
    with pytest.raises(ValueError): image_from_uri("data:image/jpeg;base64,xx")


def test_tile_places_images():
    imgs = np.stack([np.full((2, 3), i/10, np.float32) for i in range(5)])
    t = tile(imgs, ncols=3, pad=1, pad_value=1.)
    assert t.shape == (2*3 - 1, 3*4 - 1)
    assert t[0, 0] == 0 and t[3, 4] == pytest.approx(.4) and t[4, 8] == 1.  # last cell empty -> pad


def test_plot_images(images):
    x, y = images
    fig = plot_images(x[:12], ncols=4, titles=[str(i) for i in range(12)], title="t")
    assert isinstance(fig, go.Figure) and len(fig.data) == 1 and fig.data[0].type == "image"
    im = _img(fig.data[0])
    assert im.shape == (3*(28 + 9) + 2, 4*29 - 1)
    # the first image is in the top-left cell, below the title room
    np.testing.assert_allclose(im[9:9 + 28, :28], np.round(x[0, 0].numpy()*255), atol=1)
    assert [a.text for a in fig.layout.annotations] == [str(i) for i in range(12)]
    with pytest.raises(ValueError, match="titles"): plot_images(x[:3], titles=["a"])


def test_encode_decode_restore_mode(vae2, images):
    x, _ = images
    vae2.train()
    try:
        mu = encode_mean(vae2, x[:4]); out = decode(vae2, mu)
        assert vae2.training, "viz must not leave the model in eval mode"
    finally: vae2.eval()
    assert mu.shape == (4, 2) and out.shape == (4, 1, 28, 28)
    torch.testing.assert_close(mu, vae2.encoder(x[:4])[0])  # the posterior mean, not a sample


def test_latent_scatter(vae2, vae8, images):
    x, y = images
    z = encode_mean(vae2, x)
    fig = plot_latent_scatter(z, y, classes=[f"c{i}" for i in range(10)])
    assert len(fig.data) == 10 and sum(len(t.x) for t in fig.data) == 40
    t3 = next(t for t in fig.data if t.name == "c3")
    np.testing.assert_allclose(t3.x, z[y == 3, 0].numpy(), rtol=1e-6)
    # D > 2: PCA projection, variance shares in the axis titles
    fig = plot_latent_scatter(encode_mean(vae8, x), y)
    assert fig.layout.xaxis.title.text.startswith("PC1")
    assert len(plot_latent_scatter(z, None).data) == 1
    assert sum(len(t.x) for t in plot_latent_scatter(z.repeat(5, 1), y.repeat(5), max_points=100).data) == 100
    with pytest.raises(ValueError): plot_latent_scatter(z, y[:3])


def test_pca_2d():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 5, generator=g)*torch.tensor([5., 2, .1, .1, .1])
    p, axes, mean, r = pca_2d(z)
    assert p.shape == (500, 2) and axes.shape == (5, 2)
    assert abs(abs(axes[0, 0]) - 1) < 0.05 and r[0] > r[1] > 0.1


def test_latent_grid_and_manifold(vae2, vae8):
    v = latent_grid(7)
    assert torch.allclose(v, -v.flip(0), atol=1e-6) and v[-1] == pytest.approx(1.6449, abs=1e-3)
    assert torch.allclose(latent_grid(3, "linear", 2.), torch.tensor([-2., 0, 2]))
    with pytest.raises(ValueError): latent_grid(5, "cubic")
    fig = plot_latent_manifold(vae2, n=5)
    im = _img(fig.data[0])
    assert im.shape == (5*29 - 1, 5*29 - 1)
    # the bottom-left cell is z = (v[0], v[0]), the top-right z = (v[-1], v[-1])
    want = decode(vae2, torch.stack([latent_grid(5)[[0, 0]], latent_grid(5)[[-1, -1]]]))
    np.testing.assert_allclose(im[-28:, :28], np.round(want[0, 0].numpy()*255), atol=1)
    np.testing.assert_allclose(im[:28, -28:], np.round(want[1, 0].numpy()*255), atol=1)
    assert len(fig.layout.xaxis.ticktext) == 5
    assert _img(plot_latent_manifold(vae8, n=4, dims=(3, 5)).data[0]).shape == (4*29 - 1,)*2


def test_interpolate_latent():
    z = interpolate_latent(torch.zeros(3), torch.ones(3), 5)
    assert z.shape == (5, 3) and torch.allclose(z[2], torch.full((3,), .5))
    s = interpolate_latent(torch.tensor([2., 0]), torch.tensor([0., 2]), 9, "slerp")
    assert torch.allclose(s.norm(dim=1), torch.full((9,), 2.), atol=1e-5)
    lin = interpolate_latent(torch.tensor([2., 0]), torch.tensor([0., 2]), 9)
    assert lin[4].norm() < 1.5  # the straight line cuts inside the circle; slerp does not
    with pytest.raises(ValueError): interpolate_latent(torch.zeros(2), torch.ones(2), 3, "cubic")


def test_plot_interpolation(vae2, images):
    x, _ = images
    fig = plot_interpolation(vae2, x[0], x[1], steps=6)
    assert len(fig.layout.annotations) == 8 and fig.layout.annotations[0].text == "x₁"
    assert _img(fig.data[0]).shape[1] == 8*29 - 1


def test_kl_bars():
    kl = torch.tensor([0.01, 3., 0.5, 0.])
    var = torch.tensor([0.001, 1., .2, 0.])
    fig = plot_kl_per_dim(LatentUsage(2, var, kl), sort=True)
    assert [t.name for t in fig.data] == ["active", "inactive"]
    assert list(fig.data[0].x) == ["z[1]", "z[2]"] and list(fig.data[1].x) == ["z[0]", "z[3]"]
    assert list(fig.layout.xaxis.categoryarray) == ["z[1]", "z[2]", "z[0]", "z[3]"]
    assert len(plot_kl_per_dim(kl).data) == 1


def test_history():
    h = History([{"epoch": e, "train_loss": 1/e, "valid_loss": 2/e, "time": 3.} for e in (1, 2, 3)])
    fig = plot_history(h)
    assert [t.name for t in fig.data] == ["train_loss", "valid_loss"]
    assert list(fig.data[1].y) == [2., 1., 2/3] and fig.data[1].line.dash == "dash"
    with pytest.raises(ValueError): plot_history(History())
    with pytest.raises(KeyError): plot_history(h, keys=["kl"])


def _slider_contract(fig, n):
    "frames, slider steps animating them by name, and the first frame shown"
    assert len(fig.frames) == n
    steps = fig.layout.sliders[0].steps
    assert len(steps) == n and all(s.method == "animate" for s in steps)
    assert [s.args[0][0] for s in steps] == [f.name for f in fig.frames]
    assert all(s.args[1]["frame"]["redraw"] for s in steps)  # images need a redraw
    assert fig.layout.updatemenus[0].buttons[0].method == "animate"


def test_interpolation_slider_figure(vae2, vae8, images):
    x, y = images
    z = encode_mean(vae2, x)
    fig = interpolation_slider_figure(vae2, x[0], x[1], steps=7, z_bg=z, y_bg=y)
    _slider_contract(fig, 7)
    mu = encode_mean(vae2, x[:2])
    want = decode(vae2, interpolate_latent(mu[0], mu[1], 7))
    for i in (0, 3, 6):
        np.testing.assert_allclose(_img(fig.frames[i].data[0]), np.round(want[i, 0].numpy()*255), atol=1)
    star = fig.data[fig.frames[0].traces[1]]
    assert star.name == "z(α)"
    np.testing.assert_allclose([fig.frames[6].data[1].x[0], fig.frames[6].data[1].y[0]], mu[1].numpy(), rtol=1e-5)
    assert fig.data[0].source == fig.frames[0].data[0].source
    assert sum(t.name not in ("path", "ends", "z(α)") for t in fig.data[1:]) == 10  # background classes
    # 8-D: projected, still a path; and small enough to save in a notebook
    fig8 = interpolation_slider_figure(vae8, x[0], x[1], steps=21, z_bg=encode_mean(vae8, x), y_bg=y)
    _slider_contract(fig8, 21)
    assert fig8.layout.xaxis2.title.text.startswith("PC1")
    assert _size(fig8) < 150_000


def test_traversal_slider_figure(vae8):
    fig = traversal_slider_figure(vae8, dims=[1, 4], values=[-2, 0, 2])
    _slider_contract(fig, 3)
    assert fig.layout.sliders[0].active == 1
    z = torch.zeros(2, 8); z[0, 1] = 2; z[1, 4] = 2
    want = decode(vae8, z)
    im = _img(fig.frames[2].data[0])
    np.testing.assert_allclose(im[9:, :28], np.round(want[0, 0].numpy()*255), atol=1)
    np.testing.assert_allclose(im[9:, 29:], np.round(want[1, 0].numpy()*255), atol=1)
    with pytest.raises(ValueError): traversal_slider_figure(vae8, dims=[8])


class CondDecoder(nn.Module):
    "A minimal conditional model: decode(z, y) with integer labels"
    def __init__(self, latent_dim=3, n_classes=4):
        super().__init__(); self.latent_dim = latent_dim
        self.emb = nn.Embedding(n_classes, latent_dim); self.lin = nn.Linear(latent_dim, 784)
    def decode(self, z, y): return torch.sigmoid(self.lin(z + 3*self.emb(y))).view(-1, 1, 28, 28)


def test_class_slider_figure():
    set_seed(0); m = CondDecoder()
    fig = class_slider_figure(m, ["a", "b", "c", "d"], n=5, seed=3)
    _slider_contract(fig, 4)
    assert [s.label for s in fig.layout.sliders[0].steps] == list("abcd")
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    want = decode(m, z, 2)
    np.testing.assert_allclose(_img(fig.frames[2].data[0])[:, 29:57], np.round(want[1, 0].numpy()*255), atol=1)
    assert len({f.data[0].source for f in fig.frames}) == 4
    assert len(class_slider_figure(m, 4, n=2).frames) == 4
