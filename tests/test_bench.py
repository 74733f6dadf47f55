"The benchmark scripts' plumbing: `bench/gpu.sh --dry-run` runs both GPU benchmarks on the CPU, tiny."
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
