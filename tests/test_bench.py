"""The benchmark scripts' plumbing: `bench/gpu.sh --dry-run` runs both GPU benchmarks on the CPU, tiny;
the issue-16 probes (`manual_backward.py`, `nll_vs_old.py`) run small and check what they claim."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _have(name):
    from vae_book.data import DataNotFoundError, load_images
    try: load_images(name, train=False, download=False); return True
    except DataNotFoundError: return False


@pytest.mark.skipif(shutil.which('bash') is None, reason='needs bash')
def test_gpu_script_dry_run_writes_both_records(tmp_path):
    if not (_have('fashion') and _have('digits')): pytest.skip('needs Fashion-MNIST and the digits on disk')
    env = {**os.environ, 'OUT': str(tmp_path), 'PYTHON': sys.executable, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(['bash', 'bench/gpu.sh', '--dry-run'], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    speed = json.loads((tmp_path/'speed_cpu.json').read_text())
    nll = json.loads((tmp_path/'nll_digits_cpu.json').read_text())
    assert speed['meta']['device'] == 'cpu' and speed['runs'], speed['meta']
    assert nll['dataset'] == 'digits' and nll['test_nll']['k'] == 20 and nll['test_nll']['images'] == 100
    assert nll['test_nll']['nll'] <= nll['test_nll']['neg_elbo_same_images'] + 1e-3


def test_gpu_script_refuses_without_cuda_and_bad_arguments():
    r = subprocess.run(['bash', 'bench/gpu.sh', '--nope'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and 'unknown argument' in r.stderr
    import torch
    if not torch.cuda.is_available():
        env = {**os.environ, 'PYTHON': sys.executable}
        r = subprocess.run(['bash', 'bench/gpu.sh'], cwd=ROOT, env=env, capture_output=True, text=True)
        assert r.returncode == 2 and '--dry-run' in r.stderr


@pytest.mark.cuda
def test_gpu_script_on_cuda(tmp_path):
    env = {**os.environ, 'OUT': str(tmp_path), 'PYTHON': sys.executable}
    r = subprocess.run(['bash', 'bench/gpu.sh'], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=3600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert json.loads((tmp_path/'speed_cuda.json').read_text())['meta']['device'].startswith('cuda')


def test_manual_backward_matches_autograd(tmp_path):
    "The hand-written step the speed notes cite has autograd's gradients (the script asserts it)"
    if not _have('fashion'): pytest.skip('needs Fashion-MNIST on disk')
    out = tmp_path/'mb.json'
    r = subprocess.run([sys.executable, 'bench/manual_backward.py', '--batch-size', '32',
                        '--threads', '1', '--out', str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert rec['gradient_difference']['by_hand'] < 1e-5 and rec['batch_size'] == 32
    assert rec['gradient_difference']['grads_in_forward'] < 1e-5
    assert set(rec['ms_per_step']) >= {'step, autograd', 'step, by hand', 'step, Function',
                                       'step, Function, grads in forward'}


def test_nll_vs_old_compares_the_same_numbers(tmp_path):
    "Old (git archive of ef2aa55) and new iw_nll, fresh processes: same samples, same NLL"
    if not _have('fashion'): pytest.skip('needs Fashion-MNIST on disk')
    have = subprocess.run(['git', '-C', str(ROOT), 'cat-file', '-e', 'ef2aa55^{commit}'],
                          capture_output=True)
    if have.returncode: pytest.skip('needs the repository history (a shallow clone lacks ef2aa55)')
    from vae_book.core import set_seed
    from vae_book.models.vae import mlp_vae
    from vae_book.train import TrainConfig, save
    set_seed(0)
    ck = save(tmp_path/'vae.pt', mlp_vae(hidden_dim=32, latent_dim=4), TrainConfig(), {}, 'test')
    out = tmp_path/'rec.json'
    r = subprocess.run([sys.executable, 'bench/nll_vs_old.py', '--load', str(ck), '--n-test', '6',
                        '--k', '20', '--rounds', '1', '--threads', '1', '--out', str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert abs(rec['nll_minus_old']['fp32']) < 1e-3, rec['nll_minus_old']     # same z, same value
    assert set(rec['median_seconds']) >= {'old', 'fp32'} and rec['speedup_vs_old']['fp32'] > 0
