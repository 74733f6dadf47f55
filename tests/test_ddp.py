"""`fit` under `torchrun`: 2 processes on CPU with the gloo backend, real Fashion-MNIST.

`torchrun --nproc_per_node 2 tests/test_ddp.py --worker OUT` trains a VAE (stochastic), an autoencoder
(deterministic) and a DCGAN (a two-player game with batch norm) on a small Fashion-MNIST subset and saves
each rank's weights and history. The tests check:
both ranks end with identical weights and report identical metrics; only rank 0 shows progress; a second
`fit` in the same script reuses the process group, which is destroyed at exit; and the losses match one process
training on the same global batches: a world-size-1 process group run (same batch order: the deterministic
autoencoder then agrees to float rounding) and a plain single-process `fit` (different batch order and
noise: within a few per cent).
"""
import os, socket, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
N_TRAIN, VALID, BATCH, EPOCHS = 3000, 1000, 100, 2
TIMEOUT_S = 600


def _train_all(tag):
    "Train both models as the current process (single, world-1 group, or a torchrun rank) sees it"
    from vae_book.core import set_seed
    from vae_book.data import get_data
    from vae_book.models.autoencoder import mlp_autoencoder
    from vae_book.models.vae import mlp_vae
    from vae_book.models.gan import dcgan
    from vae_book.train import fit
    data = get_data('fashion', binarize=None, n_train=N_TRAIN, valid_size=VALID)
    out = {}
    for name, make in [('vae', lambda: mlp_vae(hidden_dim=128, latent_dim=8)),
                       ('ae', lambda: mlp_autoencoder(hidden_dim=128, latent_dim=8)),
                       ('gan', lambda: dcgan(latent_dim=8, channels=8))]:
        set_seed(0); model = make()
        hist = fit(model, data, epochs=EPOCHS, batch_size=BATCH, lr=2e-3, seed=1, device='cpu',
                   progress=(tag == 'ddp'))
        out[name] = {'hist': list(hist), 'state': {k: v.clone() for k, v in model.state_dict().items()}}
    return out


def _worker(path):
    import torch.distributed as dist
    if os.environ.get('WORLD_SIZE'):  # a torchrun rank: fit joins the process group itself
        assert not dist.is_initialized()
        out = _train_all('ddp')
        assert dist.is_initialized() and dist.get_world_size() == 2
        torch.save(out, f"{path}.rank{os.environ['RANK']}")
        return
    torch.save(_train_all('single'), f'{path}.single')
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    try: out = _train_all('group1')
    finally:
        assert dist.is_initialized(), "fit destroyed a process group it did not create"
        dist.destroy_process_group()
    torch.save(out, f'{path}.group1')


def _have_fashion():
    try:
        from vae_book.data import load_images
        load_images('fashion', True, download=False); return True
    except Exception: return False


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    if not _have_fashion(): pytest.skip("Fashion-MNIST is not on this machine")
    if not torch.distributed.is_available(): pytest.skip("torch.distributed is not available")
    d = tmp_path_factory.mktemp('ddp'); path = d/'out'; logs = d/'logs'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'VAE_BOOK_DATASET': 'fashion'}
    env.pop('WORLD_SIZE', None)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '--log-dir', str(logs), '--redirects', '3', '--tee', '0', str(Path(__file__)), '--worker', str(path)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    err = {p.parent.name: p.read_text() for p in logs.rglob('stderr.log')}
    assert r.returncode == 0, f"torchrun failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n{err}"
    r = subprocess.run([sys.executable, str(Path(__file__)), '--worker', str(path)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, f"single-process run failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    load = lambda s: torch.load(f'{path}.{s}', weights_only=False)
    return {'r0': load('rank0'), 'r1': load('rank1'), 'single': load('single'), 'group1': load('group1'),
            'stderr': err}


@pytest.mark.parametrize('name', ['vae', 'ae', 'gan'])
def test_ranks_identical(runs, name):
    a, b = runs['r0'][name], runs['r1'][name]
    for k in a['state']: assert torch.equal(a['state'][k], b['state'][k]), f"{name}.{k} differs between ranks"
    strip = lambda h: [{k: v for k, v in r.items() if k != 'time'} for r in h]
    assert strip(a['hist']) == strip(b['hist']), "ranks report different metrics"
    assert [r['epoch'] for r in a['hist']] == list(range(1, EPOCHS + 1))


def test_gan_trained_as_a_game_under_torchrun(runs):
    "Both players moved on both ranks: per-player columns, finite, and weights changed from the start"
    import math
    h = runs['r0']['gan']['hist']
    assert {'train_d_loss', 'train_g_loss'} <= set(h[-1]) and 'valid_loss' not in h[-1], h[-1]
    assert all(math.isfinite(r[k]) for r in h for k in ('train_d_loss', 'train_g_loss'))
    one = runs['group1']['gan']['hist'][-1]  # the same game in one process: a similar equilibrium
    assert abs(h[-1]['train_d_loss'] - one['train_d_loss']) < 0.5, (h[-1], one)


def test_matches_one_process_same_batches_deterministic(runs):
    "World size 1 and 2 see the same global batches: a deterministic model's losses agree to rounding"
    ddp, one = runs['r0']['ae']['hist'], runs['group1']['ae']['hist']
    assert len(ddp) == len(one) == EPOCHS
    for e1, e2 in zip(ddp, one):
        for k in ('train_loss', 'valid_loss'): assert abs(e1[k] - e2[k]) <= 1e-3*e2[k], (k, e1[k], e2[k])


def test_matches_one_process_same_batches_vae(runs):
    "The VAE's ε differs per rank, so only the trained result matches: final losses within 3%"
    ddp, one = runs['r0']['vae']['hist'][-1], runs['group1']['vae']['hist'][-1]
    for k in ('train_loss', 'valid_loss'): assert abs(ddp[k] - one[k]) <= 0.03*one[k], (k, ddp[k], one[k])


@pytest.mark.parametrize('name', ['vae', 'ae'])
def test_matches_plain_fit(runs, name):
    "Against plain single-process `fit` (its own batch order): the same loss within 3%"
    ddp, one = runs['r0'][name]['hist'][-1], runs['single'][name]['hist'][-1]
    for k in ('train_loss', 'valid_loss'): assert abs(ddp[k] - one[k]) <= 0.03*one[k], (name, k, ddp[k], one[k])
    first = runs['single'][name]['hist'][0]['train_loss']
    assert ddp['valid_loss'] < first, "DDP training did not learn"


def test_group_destroyed_at_exit(runs):
    for r, e in runs['stderr'].items(): assert 'destroy_process_group' not in e, (r, e[-2000:])


def test_progress_on_rank0_only(runs):
    err = runs['stderr']
    assert set(err) == {'0', '1'}, err.keys()
    assert 'epochs' in err['0'], err['0'][-2000:]
    assert 'epochs' not in err['1'] and 'epoch 1' not in err['1'], err['1'][-2000:]


@pytest.mark.cuda
def test_ddp_nccl_two_gpus(tmp_path):
    "The same worker on 2 GPUs with NCCL (needs 2 CUDA devices)"
    if torch.cuda.device_count() < 2: pytest.skip("needs 2 CUDA GPUs")
    code = ("import torch, os; from vae_book.data import get_data; from vae_book.models.vae import mlp_vae;"
            "from vae_book.train import fit; m = mlp_vae(); "
            "h = fit(m, get_data('fashion', n_train=4096, valid_size=1000), epochs=1, progress=False);"
            "torch.save({k: v.cpu() for k, v in m.state_dict().items()}, "
            f"'{tmp_path}/w' + os.environ['RANK'])")
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                        '--no-python', sys.executable, '-c', code],
                       cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (torch.load(tmp_path/f'w{i}') for i in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)


if __name__ == '__main__' and len(sys.argv) == 3 and sys.argv[1] == '--worker':
    sys.path.insert(0, str(ROOT))
    _worker(sys.argv[2])
