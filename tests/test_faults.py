"""Faults a user's run meets: Ctrl-C (SIGINT) and `kill -9` (SIGKILL) during training and during `save`,
and several processes saving one checkpoint while another reads it. Nothing finished may be lost: the
epochs before the signal survive (in `fit`'s per-epoch checkpoint, `TrainConfig.checkpoint`), the
previous file survives an interrupted save, no temporary files are left behind once the next save has
run, and a reader never sees a broken file.

Each case runs the work in a forked child process and signals it from here.
"""
import json, multiprocessing as mp, os, signal, time
from pathlib import Path

import pytest
import torch

from vae_book.models.vae import mlp_vae
from vae_book.train import fit, load, save

pytestmark = pytest.mark.skipif(os.name != 'posix', reason='POSIX signals')

def train(path, out):
    "Train for ever, saving after every epoch; write how many epochs `fit` returned"
    torch.set_num_threads(1); torch.manual_seed(0)
    h = fit(mlp_vae(hidden_dim=32, latent_dim=2), torch.rand(256, 1, 28, 28), epochs=100_000,
            batch_size=64, device='cpu', progress=False, checkpoint=path)
    Path(out).write_text(json.dumps({'epochs': len(h)}))


def save_loop(path, writer, n):
    "Save a ~5 MB model `n` times to `path`"
    torch.set_num_threads(1); torch.manual_seed(writer)
    m = mlp_vae(hidden_dim=800, latent_dim=8)           # ~1.3M parameters
    for i in range(n): save(path, m, metrics={'writer': writer, 'i': i})


def child(fn, *args):
    "`fn(*args)` in a forked process (no second start-up of Python and torch)"
    p = mp.get_context('fork').Process(target=fn, args=args); p.start(); return p


def wait_for(cond, proc, timeout=120):
    t0 = time.time()
    while not cond():
        if not proc.is_alive(): pytest.fail(f"child ended early with exit code {proc.exitcode}")
        if time.time() - t0 > timeout: proc.kill(); pytest.fail("timed out waiting for the child")
        time.sleep(0.02)


def temporaries(folder: Path): return sorted(p.name for p in folder.iterdir() if p.name.endswith('.tmp'))


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGKILL], ids=['SIGINT', 'SIGKILL'])
def test_signal_during_training_keeps_finished_epochs(tmp_path, sig):
    path, out = tmp_path/'run.pt', tmp_path/'out.json'
    p = child(train, path, out)
    wait_for(path.exists, p); first = path.stat().st_mtime_ns
    wait_for(lambda: path.stat().st_mtime_ns != first, p)   # a second epoch saved
    os.kill(p.pid, sig); p.join(60)
    ck = load(path)                               # the last finished epoch, intact
    done = [r['epoch'] for r in ck.history]
    assert done == list(range(1, len(done) + 1)) and len(done) >= 2
    assert all(torch.isfinite(v).all() for v in ck.model.state_dict().values() if v.is_floating_point())
    if sig == signal.SIGINT:                      # fit returns what it finished, and the caller goes on
        assert p.exitcode == 0 and json.loads(out.read_text())['epochs'] >= len(done)
    else: assert p.exitcode == -signal.SIGKILL
    save(path, ck.model)                          # the next save clears what a killed one left
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGKILL], ids=['SIGINT', 'SIGKILL'])
def test_signal_during_save_keeps_previous_file(tmp_path, sig):
    path = tmp_path/'model.pt'
    p = child(save_loop, path, 1, 10_000)
    wait_for(path.exists, p)                      # one save finished
    time.sleep(0.05 + 0.1*torch.rand(()).item())  # somewhere inside a later save
    os.kill(p.pid, sig); p.join(60)
    assert p.exitcode != 0
    ck = load(path)                               # checksum verified: a whole, earlier file
    assert ck.metrics['writer'] == 1 and ck.metrics['i'] >= 0
    if sig == signal.SIGINT: assert temporaries(tmp_path) == []   # cleaned on the way out
    save(path, mlp_vae(hidden_dim=8, latent_dim=2))
    assert temporaries(tmp_path) == []


def test_concurrent_saves_and_a_reader(tmp_path):
    path = tmp_path/'shared.pt'
    save(path, mlp_vae(hidden_dim=8, latent_dim=2), metrics={'writer': 0, 'i': -1})
    writers = [child(save_loop, path, w, 4) for w in (1, 2)]
    reads, seen = 0, set()
    while any(w.is_alive() for w in writers) or reads < 5:
        ck = load(path)                           # must never fail: atomic replace + checksum
        reads += 1; seen.add(ck.metrics['writer']); time.sleep(0.02)
    for w in writers: w.join(60); assert w.exitcode == 0
    assert load(path).metrics['i'] == 3 and reads >= 5 and seen & {1, 2}
    assert temporaries(tmp_path) == []
