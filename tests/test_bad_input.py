"""Bad and unusual input, as a library user would pass it: every case gets a clear error (the type, and a
phrase that names the argument or says what to do) or the correct result; none passes silently.

One table, `CASES`: each row is a call and what must come of it, `(ExceptionType, phrase)` or `OK` (the call
checks its own result). Small random tensors and tiny models only: the whole table runs in a few seconds on
a CPU. Fault tolerance (signals, concurrent saves) is in `test_faults.py`.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vae_book.core import build_arch, check_labels
from vae_book.data import Data, TensorLoader, as_tensors, get_data, image_folder
from vae_book.losses.elbo import elbo_loss, gaussian_kl
from vae_book.losses.recon import bernoulli_nll, gaussian_nll
from vae_book.metrics import class_coverage, fd_lenet, frechet_distance, iw_nll
from vae_book.models.lenet import lenet
from vae_book.models.autoencoder import mlp_autoencoder
from vae_book.models.cvae import cvae
from vae_book.models.encoders import conv_vae, vit_vae
from vae_book.models.gan import dcgan, vae_gan
from vae_book.models.vae import mlp_vae
from vae_book.checkpoint import _digest
from vae_book.train import TrainConfig, TrainingError, fit, load, save
from vae_book.viz import latent_grid, plot_images, plot_latent_scatter, to_images
from vae_book.widgets import interpolation_explorer, traversal_explorer

OK = None
torch.manual_seed(0)
X = torch.rand(64, 1, 28, 28)                  # grey levels in [0, 1]
Y = torch.arange(64) % 10
RGB = torch.rand(40, 3, 32, 32)


def vae(): return mlp_vae(hidden_dim=16, latent_dim=2)
def cv(): return cvae(hidden_dim=16, latent_dim=2)
def run(model, data, **kw): return fit(model, data, **{'epochs': 1, 'progress': False, 'device': 'cpu', **kw})
def loader(x, y=None, bs=16): return TensorLoader(x, Y[:len(x)] if y is None else y, bs)


def with_nan(x, v=float('nan')): x = x.clone(); x.view(-1)[5] = v; return x


# ------------------------------------------------------------------ checks that must give the right result
def ok_numpy_int_epochs(): assert TrainConfig(epochs=np.int64(2)).epochs == 2


def ok_batch_size_dataloader(tmp_path):
    sizes = []
    class M(nn.Module):
        def __init__(self): super().__init__(); self.m = vae()
        def loss(self, b): sizes.append(len(b.x)); return self.m.loss(b)
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=8)
    run(M(), dl, batch_size=32); assert max(sizes) == 32
    sizes.clear(); run(M(), TensorLoader(X, Y, 16)); assert max(sizes) == 16   # its own size kept


def ok_own_data_kinds(tmp_path):
    for data in (X, (X, Y), torch.utils.data.TensorDataset(X, Y), X.numpy(), (X.numpy(), Y.numpy())):
        assert run(vae(), data, batch_size=32).last['epoch'] == 1


def ok_rgb_conv_vae(tmp_path):
    m = conv_vae(img_shape=(3, 32, 32), latent_dim=2, channels=4)
    h = run(m, get_data(RGB, valid_size=8, test_size=0), batch_size=16)
    assert math.isfinite(h.last['valid_loss']) and m.sample(2).shape == (2, 3, 32, 32)


def ok_divergence_truthful(tmp_path):
    m = mlp_autoencoder(hidden_dim=16)
    with pytest.raises(TrainingError) as e: run(m, loader(X), lr=1e30)
    big = max(p.abs().max().item() for p in m.parameters())
    assert 'unchanged' not in str(e.value) and f'largest |w| = {big:.3g}' in str(e.value)


def ok_metadata_converted(tmp_path):
    p = save(tmp_path/'m.pt', vae(), metrics={'nll': np.float32(81.5), 'dir': tmp_path, 'arr': np.ones(2)})
    ck = load(p); assert ck.metrics['nll'] == 81.5 and ck.metrics['dir'] == str(tmp_path)
    assert torch.equal(ck.metrics['arr'], torch.ones(2, dtype=torch.float64))


def ok_rgb_plot(tmp_path):
    fig = plot_images(RGB[:4]); assert len(fig.data) == 1 and to_images(RGB[:4]).shape == (4, 32, 32, 3)


def ok_cvae_explorer(tmp_path):
    w = interpolation_explorer(cv(), X[:10], Y[:10]); w.alpha.value = 0.5
    t = traversal_explorer(cv(), x=X[:10], y=Y[:10]); t.sliders[0].value = 1.0
    assert w.image.value and t.image.value and t.y_cond == 0


def ok_image_folder_rgb(tmp_path):
    from PIL import Image
    for i in range(12):
        (tmp_path/f'c{i % 2}').mkdir(exist_ok=True)
        Image.new('RGB', (20 + i, 24), (i*20, 0, 0)).save(tmp_path/f'c{i % 2}'/f'{i}.png')
    d = get_data(tmp_path, image_size=(16, 16), valid_size=2, test_size=2, batch_size=4)
    assert d.shape == (3, 16, 16) and d.classes == ['c0', 'c1'] and d.train.batch_size == 4


# ------------------------------------------------------------------ helpers that build bad files
def corrupt_image_folder(tmp_path):
    from PIL import Image
    (tmp_path/'a').mkdir(); Image.new('RGB', (8, 8)).save(tmp_path/'a'/'good.png')
    (tmp_path/'a'/'bad.png').write_bytes(Image.new('RGB', (8, 8)).tobytes()[:10])
    return get_data(tmp_path)


def saved(tmp_path, name='m.pt'): return save(tmp_path/name, vae(), metrics={'a': 1.0})


def flipped(tmp_path):
    p = saved(tmp_path); raw = bytearray(p.read_bytes()); raw[raw.index(b'data/0') + 300] ^= 0xFF
    p.write_bytes(bytes(raw)); return load(p)


def truncated(tmp_path):
    p = saved(tmp_path); p.write_bytes(p.read_bytes()[:2000]); return load(p)


def liar(tmp_path, **kw):
    p = saved(tmp_path); ck = torch.load(p, weights_only=True)
    ck['arch']['kwargs'].update(kw); ck['sha256'] = _digest(ck); torch.save(ck, p); return load(p)


def foreign(tmp_path): torch.save({'weights': torch.ones(3)}, tmp_path/'f.pt'); return load(tmp_path/'f.pt')


def pickled_object(tmp_path):
    torch.save({'format': 'vae_book.checkpoint/2', 'x': Path('.')}, tmp_path/'o.pt')
    return load(tmp_path/'o.pt')


CASES = [
    # TrainConfig: non-finite or non-positive settings
    ('cfg lr=0', lambda t: TrainConfig(lr=0),
     ValueError, 'lr must be a finite number > 0'),
    ('cfg lr=-1', lambda t: TrainConfig(lr=-1),
     ValueError, 'lr must be a finite number > 0'),
    ('cfg lr=inf', lambda t: TrainConfig(lr=float('inf')), ValueError, 'got inf'),
    ('cfg lr=nan', lambda t: TrainConfig(lr=float('nan')), ValueError, 'got nan'),
    ('cfg lr=str', lambda t: TrainConfig(lr='1e-3'),
     ValueError, 'lr must be a finite number'),
    ('cfg epochs=-1', lambda t: TrainConfig(epochs=-1),
     ValueError, 'epochs must be an int >= 0'),
    ('cfg epochs=1.5', lambda t: TrainConfig(epochs=1.5),
     ValueError, 'epochs must be an int'),
    ('cfg epochs=True', lambda t: TrainConfig(epochs=True),
     ValueError, 'epochs must be an int'),
    ('cfg batch_size=0', lambda t: TrainConfig(batch_size=0),
     ValueError, 'batch_size must be an int >= 1'),
    ('cfg batch_size=2.5', lambda t: TrainConfig(batch_size=2.5),
     ValueError, 'batch_size must be'),
    ('cfg grad_clip=0', lambda t: TrainConfig(grad_clip=0),
     ValueError, 'grad_clip must be a finite number > 0'),
    ('cfg grad_clip=inf', lambda t: TrainConfig(grad_clip=math.inf),
     ValueError, 'grad_clip must be'),
    ('cfg weight_decay<0', lambda t: TrainConfig(weight_decay=-1e-4),
     ValueError, 'weight_decay must be'),
    ('cfg seed<0', lambda t: TrainConfig(seed=-1),
     ValueError, 'seed must be an int >= 0'),
    ('cfg amp=int8', lambda t: TrainConfig(amp='int8'),
     ValueError, 'amp must be one of'),
    ('cfg device=3', lambda t: TrainConfig(device=3),
     ValueError, 'device must be a str'),
    ('cfg fused=yes', lambda t: TrainConfig(fused='yes'),
     ValueError, 'fused must be one of'),
    ('cfg numpy int', lambda t: ok_numpy_int_epochs(), OK, None),
    # fit: the data is checked before any work
    ('fit uint8', lambda t: run(vae(), (X*255).to(torch.uint8)),
     TypeError, 'divide by 255'),
    ('fit 0-255 floats', lambda t: run(vae(), loader(X*255)),
     ValueError, 'divide by 255'),
    ('fit [-1,1] bernoulli', lambda t: run(vae(), loader(X*2 - 1)),
     ValueError, "likelihood='gaussian'"),
    ('fit gaussian [-1,1] ok', lambda t: run(mlp_vae(hidden_dim=16, likelihood='gaussian'), loader(X*2 - 1)),
     OK, None),
    ('fit NaN', lambda t: run(vae(), loader(with_nan(X))),
     ValueError, 'NaN or infinite'),
    ('fit inf', lambda t: run(vae(), loader(with_nan(X, math.inf))),
     ValueError, 'NaN or infinite'),
    ('fit NaN in DataLoader', lambda t: run(vae(), torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(with_nan(X), Y), batch_size=16)), ValueError, 'NaN or infinite'),
    ('fit uint8 DataLoader', lambda t: run(vae(), torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset((X*255).byte(), Y), batch_size=16)), TypeError, 'divide by 255'),
    ('fit labels >= n_classes', lambda t: run(cv(), loader(X, Y + 5)),
     ValueError, 'must be in [0, 10)'),
    ('fit negative labels', lambda t: run(cv(), loader(X, Y - 1)),
     ValueError, 'must be in [0, 10)'),
    ('fit float labels', lambda t: run(cv(), (X, Y.float())),
     TypeError, 'must be integers'),
    ('fit lenet labels', lambda t: run(lenet(n_classes=3, width=4), loader(X)),
     ValueError, 'in [0, 3)'),
    ('fit empty', lambda t: run(vae(), torch.zeros(0, 1, 28, 28)),
     ValueError, 'non-empty'),
    ('fit batch > data', lambda t: run(vae(), loader(X[:10]), batch_size=64),
     ValueError,
     'larger than the 10 training examples'),
    ('fit wrong shape', lambda t: run(vae(), RGB),
     ValueError, 'first batch, with x of shape'),
    ('fit no loss', lambda t: run(nn.Linear(2, 2), X),
     TypeError, 'no .loss(batch) method'),
    ('fit unknown setting', lambda t: run(vae(), X, learning_rate=1e-3),
     TypeError, 'unknown settings'),
    ('fit cfg dict', lambda t: fit(vae(), X, {'lr': 1e-3}),
     TypeError, 'cfg must be a TrainConfig'),
    ('fit no data', lambda t: run(vae(), None), ValueError, 'no training data'),
    ('fit str data', lambda t: run(vae(), 'data/'),
     TypeError, 'cannot read training data from a str'),
    ('fit x/y lengths', lambda t: run(vae(), (X, Y[:10])),
     ValueError, '64 examples but 10 labels'),
    ('fit cannot rebatch', lambda t: run(vae(), [(X[:8], Y[:8])], batch_size=4),
     ValueError,
     'cannot change the batch size'),
    ('fit lr=1e30 truthful', ok_divergence_truthful, OK, None),
    ('fit batch_size honoured', ok_batch_size_dataloader, OK, None),
    ('fit own data kinds', ok_own_data_kinds, OK, None),
    ('fit rgb conv vae', ok_rgb_conv_vae, OK, None),
    # models: constructors check their arguments
    ('cvae beta=-1', lambda t: cvae(beta=-1),
     ValueError, 'beta must be a finite number >= 0'),
    ('cvae latent_dim=0', lambda t: cvae(latent_dim=0),
     ValueError, 'latent_dim must be an int >= 1'),
    ('cvae n_classes=0', lambda t: cvae(n_classes=0),
     ValueError, 'n_classes must be an int >= 1'),
    ('cvae embed_dim=0', lambda t: cvae(embed_dim=0),
     ValueError, 'embed_dim must be an int >= 1'),
    ('cvae free_bits=inf', lambda t: cvae(free_bits=math.inf),
     ValueError, 'free_bits must be'),
    ('mlp_vae hidden=0', lambda t: mlp_vae(hidden_dim=0),
     ValueError, 'hidden_dim must be an int >= 1'),
    ('mlp_vae hidden=2.5', lambda t: mlp_vae(hidden_dim=2.5),
     ValueError, 'hidden_dim must be an int'),
    ('mlp_vae in_dim', lambda t: mlp_vae(in_dim=100), ValueError, 'they must match'),
    ('mlp_vae likelihood', lambda t: mlp_vae(likelihood='poisson'),
     ValueError, 'likelihood must be one of'),
    ('mlp_vae beta=nan', lambda t: mlp_vae(beta=math.nan),
     ValueError, 'beta must be a finite number'),
    ('mlp_vae warmup=-1', lambda t: mlp_vae(warmup=-1),
     ValueError, 'warmup must be an int >= 0'),
    ('mlp_vae n_layers=-1', lambda t: mlp_vae(n_layers=-1),
     ValueError, 'n_layers must be an int >= 0'),
    ('autoencoder noise=1', lambda t: mlp_autoencoder(noise=1.0),
     ValueError, 'noise must be in [0, 1)'),
    ('autoencoder noise=nan', lambda t: mlp_autoencoder(noise=math.nan),
     ValueError, 'noise must be'),
    ('conv_vae 30x30', lambda t: conv_vae(img_shape=(3, 30, 30)),
     ValueError, 'divisible by 4'),
    ('conv_vae 2-d shape', lambda t: conv_vae(img_shape=(32, 32)),
     ValueError, 'tuple of 3 ints'),
    ('conv_vae channels=0', lambda t: conv_vae(channels=0),
     ValueError, 'channels must be an int >= 1'),
    ('vit_vae heads', lambda t: vit_vae(dim=30, heads=4),
     ValueError, 'divisible by heads=4'),
    ('vit_vae patch', lambda t: vit_vae(patch_size=5),
     ValueError, 'does not divide the image size'),
    ('dcgan channels=0', lambda t: dcgan(channels=0),
     ValueError, 'channels must be an int >= 1'),
    ('vae_gan gamma=inf', lambda t: vae_gan(gamma=math.inf),
     ValueError, 'must be > 0 and finite'),
    ('lenet n_classes=0', lambda t: lenet(n_classes=0),
     ValueError, 'n_classes must be an int >= 1'),
    ('build_arch bad kwargs', lambda t: build_arch({'name': 'mlp_vae', 'kwargs': {'size': 3}}),
     TypeError,
     'do not fit mlp_vae'),
    ('vae sample n=0', lambda t: vae().sample(0), ValueError, 'n must be an int >= 1'),
    ('cvae sample y=10', lambda t: cv().sample(2, y=10),
     ValueError, 'must be in [0, 10)'),
    ('cvae loss float y', lambda t: cv().loss(loader(X, Y.float()).__iter__().__next__()),
     TypeError,
     'must be integers'),
    # losses
    ('bernoulli_nll shapes', lambda t: bernoulli_nll(torch.zeros(2, 784), X[:2]),
     ValueError,
     'must match'),
    ('gaussian_nll shapes', lambda t: gaussian_nll(torch.zeros(2, 3), torch.zeros(2, 4)),
     ValueError,
     'must match'),
    ('gaussian_kl shapes', lambda t: gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4)),
     ValueError,
     'differ in shape'),
    ('elbo likelihood', lambda t: elbo_loss(X[:2], X[:2], torch.zeros(2, 2), torch.zeros(2, 2),
                                            likelihood='laplace'), ValueError, 'likelihood must be one of'),
    ('check_labels range', lambda t: check_labels([0, 12], 10),
     ValueError, 'got values from 0 to 12'),
    # data
    ('get_data unknown', lambda t: get_data('cifar10'), ValueError, 'Unknown dataset'),
    ('get_data binarize', lambda t: get_data(X, binarize='yes'),
     ValueError, 'binarize must be one of'),
    ('get_data uint8', lambda t: get_data((X*255).byte()), TypeError, 'divide by 255'),
    ('get_data binarize 0-255', lambda t: get_data(X*255, binarize='dynamic'),
     ValueError, 'divide by 255'),
    ('get_data no folder', lambda t: get_data(t/'missing'),
     FileNotFoundError, 'no folder of images'),
    ('get_data empty folder', lambda t: image_folder(t),
     FileNotFoundError, 'one sub-folder per class'),
    ('get_data sizes', lambda t: get_data(X, valid_size=0.95, test_size=0.1),
     ValueError,
     'leave none of the 64 examples'),
    ('get_data valid_size str', lambda t: get_data(X, valid_size='10%'), ValueError,
     'valid_size must be a fraction'),
    ('get_data batch_size=0', lambda t: get_data(X, batch_size=0),
     ValueError, 'batch_size must be an int'),
    ('as_tensors shapes', lambda t: as_tensors([torch.rand(1, 4, 4), torch.rand(1, 5, 4)]),
     ValueError,
     'differ in shape'),
    ('as_tensors str labels', lambda t: as_tensors([(torch.rand(2), 'cat')]), TypeError,
     'must be integers'),
    ('corrupt image file', corrupt_image_folder, ValueError, 'bad.png'),
    ('TensorLoader lengths', lambda t: TensorLoader(X, Y[:3]),
     ValueError, 'differ in length'),
    ('image folder rgb any size', ok_image_folder_rgb, OK, None),
    # checkpoints
    ('save object metadata', lambda t: save(t/'a.pt', vae(), metrics={'f': print}),
     TypeError,
     "metrics['f'] is a builtin_function_or_method"),
    ('save to folder', lambda t: save(t, vae()), IsADirectoryError, 'is a folder'),
    ('save not a model', lambda t: save(t/'a.pt', {'w': 1}),
     TypeError, 'must be an nn.Module'),
    ('save numpy/Path metadata', ok_metadata_converted, OK, None),
    ('load missing', lambda t: load(t/'none.pt'),
     FileNotFoundError, 'No checkpoint at'),
    ('load folder', lambda t: load(t), IsADirectoryError, 'is a folder'),
    ('load truncated', truncated, ValueError, 'truncated or corrupt'),
    ('load flipped byte', flipped, ValueError, 'fails its checksum'),
    ('load huge claim', lambda t: liar(t, hidden_dim=300_000),
     ValueError, 'does not fit this model'),
    ('load absurd claim', lambda t: liar(t, n_layers=10**9),
     ValueError, 'far more than the stored'),
    ('load foreign file', foreign, ValueError, 'not a vae_book checkpoint'),
    ('load pickled object', pickled_object,
     ValueError, 'safe load (weights_only=True) refuses'),
    ('load other config', lambda t: load(saved(t), cfg=TrainConfig(lr=0.5)), ValueError,
     'different config'),
    ('load other arch', lambda t: load(saved(t), model=mlp_vae(hidden_dim=16, latent_dim=3)),
     ValueError,
     'different architecture'),
    # viz and widgets
    ('to_images 2 channels', lambda t: to_images(torch.rand(2, 2, 8, 8)),
     ValueError, '1 (grey) or 3 (RGB)'),
    ('plot_images titles', lambda t: plot_images(X[:3], titles=['a']),
     ValueError, 'got 1 titles for 3'),
    ('latent_grid n=1', lambda t: latent_grid(1), ValueError, 'n must be >= 2'),
    ('scatter 1-d z', lambda t: plot_latent_scatter(torch.zeros(5, 1)),
     ValueError, 'D >= 2'),
    ('plot rgb', ok_rgb_plot, OK, None),
    ('explorer cvae without y', lambda t: interpolation_explorer(cv(), X[:4]),
     ValueError,
     'needs the labels'),
    ('explorers cvae', ok_cvae_explorer, OK, None),
    # metrics
    ('iw_nll k=0', lambda t: iw_nll(vae(), loader(X), k=0, progress=False),
     ValueError, 'k must be an int'),
    ('iw_nll no log_weights', lambda t: iw_nll(lenet(width=4), loader(X), k=2, progress=False),
     TypeError,
     'needs a model with log_weights'),
    ('fd_lenet rgb', lambda t: fd_lenet(lenet(width=4), RGB, RGB),
     ValueError, '28x28 greyscale'),
    ('frechet one example', lambda t: frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3)),
     ValueError,
     'at least 2 examples'),
    ('frechet NaN', lambda t: frechet_distance(with_nan(torch.rand(5, 3)), torch.rand(5, 3)),
     ValueError,
     'NaN or inf'),
    ('coverage empty', lambda t: class_coverage(lenet(width=4), X[:0]),
     ValueError, 'no images'),
]


@pytest.mark.parametrize('call,exc,phrase', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, phrase, tmp_path):
    if exc is OK: call(tmp_path); return
    with pytest.raises(exc) as e: call(tmp_path)
    assert phrase in str(e.value), f"{phrase!r} not in: {e.value}"


def test_table_is_large_and_named():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
