"""`vae_book.train`: determinism, checkpoints, clear errors, interrupts, config validation, speed options.

Real data: a small Fashion-MNIST subset (skipped where the files are missing). The CUDA tests run the GPU
paths (data on the device, pinned-memory copies, bf16/fp16 autocast, the sync-free NaN check that skips bad
steps, torch.compile) and skip without a GPU.
"""
import dataclasses, math
from typing import NamedTuple

import pytest
import torch
from torch import nn, Tensor

from vae_book.core import set_seed
from vae_book.data import Data, TensorLoader, get_data
from vae_book.models.vae import mlp_vae
from vae_book.train import (Checkpoint, History, TrainConfig, TrainingError, evaluate, fit, load, save)



def _fashion():
    try: return get_data('fashion', binarize='dynamic', n_train=1024, valid_size=512, download=False)
    except FileNotFoundError: pytest.skip("Fashion-MNIST is not on this machine")


@pytest.fixture(scope='module')
def data(): return _fashion()


def small_vae(): return mlp_vae(hidden_dim=64, latent_dim=4)


def strip(h): return [{k: v for k, v in r.items() if k != 'time'} for r in h]


class Out(NamedTuple): loss: Tensor; mse: Tensor


class AE(nn.Module):
    "A linear autoencoder following the protocol, with hooks to misbehave"
    def __init__(self, nan_at=None, interrupt_at=None):
        super().__init__(); self.enc, self.dec = nn.Linear(784, 8), nn.Linear(8, 784)
        self.calls, self.nan_at, self.interrupt_at = 0, nan_at, interrupt_at
    def forward(self, x): return self.dec(self.enc(x.flatten(1))).view_as(x)
    def loss(self, batch):
        if self.training: self.calls += 1
        if self.training and self.calls == self.interrupt_at: raise KeyboardInterrupt
        err = (self(batch.x) - batch.x).pow(2).flatten(1).sum(1).mean()
        if self.training and self.calls == self.nan_at: err = err*float('nan')
        return Out(err, err.detach())


# ------------------------------------------------------------------ determinism
def test_seeded_fit_repeats_exactly(data):
    runs = []
    for _ in range(2):
        set_seed(3); m = small_vae()
        h = fit(m, data, epochs=2, batch_size=128, seed=11, device='cpu', progress=False)
        runs.append((strip(h), {k: v.clone() for k, v in m.state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    set_seed(3); h3 = fit(small_vae(), data, epochs=2, batch_size=128, seed=12, device='cpu', progress=False)
    assert strip(h3) != runs[0][0], "a different seed should change the run"


def test_fit_learns_and_reports(data):
    set_seed(0); m = small_vae()
    before = evaluate(m, data.valid)['loss']
    h = fit(m, data, epochs=2, batch_size=64, lr=3e-3, device='cpu', progress=False)
    assert isinstance(h, History) and len(h) == 2 and h.col('epoch') == [1, 2]
    assert {'train_loss', 'train_recon', 'train_kl', 'valid_loss', 'time'} <= set(h.last)
    assert h.last['valid_loss'] < 0.8*before, (before, h.last)
    assert h.config['epochs'] == 2 and h.config['lr'] == 3e-3
    assert abs(evaluate(m, data.valid)['loss'] - h.last['valid_loss']) < 0.02*h.last['valid_loss']


def test_empty_validation_is_skipped(data):
    d = get_data('fashion', binarize=None, n_train=256, valid_size=0, download=False)
    assert len(d.valid.x) == 0
    h = fit(AE(), d, epochs=1, device='cpu', progress=False)
    assert 'valid_loss' not in h.last and h.last['train_loss'] > 0


def test_torch_dataloader_and_pairs(data):
    ds = torch.utils.data.TensorDataset(data.train.x[:256], data.train.y[:256])
    dl = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True)
    h = fit(AE(), (dl, data.valid), epochs=1, batch_size=None, device='cpu', progress=False)
    assert h.last['valid_loss'] > 0
    h = fit(AE(), data.train, epochs=1, device='cpu', progress=False)  # a bare training loader
    assert 'valid_loss' not in h.last


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip_and_mismatch(tmp_path, data):
    set_seed(0); m = mlp_vae(hidden_dim=64, latent_dim=4); cfg = TrainConfig(epochs=1, progress=False, device='cpu')
    h = fit(m, data, cfg)
    p = save(tmp_path/'sub'/'vae.pt', m, cfg, {'valid_loss': h.last['valid_loss']}, 'python train.py')
    ck = load(p)
    assert isinstance(ck, Checkpoint) and ck.command == 'python train.py'
    assert ck.model.arch == m.arch and ck.config == dataclasses.asdict(cfg)
    for k, v in m.state_dict().items(): assert torch.equal(ck.model.state_dict()[k], v)
    set_seed(5); a = evaluate(m, data.valid)['loss']; set_seed(5); b = evaluate(ck.model, data.valid)['loss']
    assert a == b
    load(p, cfg=dataclasses.replace(cfg, progress=True, device=None))  # ignored fields
    with pytest.raises(ValueError, match='lr: checkpoint has 0.001, you passed 0.01'):
        load(p, cfg=dataclasses.replace(cfg, lr=1e-2))
    with pytest.raises(ValueError, match='latent_dim: checkpoint has 4, you passed 8'):
        load(p, model=mlp_vae(hidden_dim=64, latent_dim=8))
    with pytest.raises(ValueError, match='does not fit this model'):
        load(p, model=AE())
    with pytest.raises(FileNotFoundError, match='No checkpoint at'): load(tmp_path/'missing.pt')
    (tmp_path/'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(Exception): load(tmp_path/'junk.pt')


# ------------------------------------------------------------------ errors
def test_wrong_shape_names_it(data):
    bad = Data(TensorLoader(torch.rand(32, 3, 32, 32), torch.zeros(32, dtype=torch.long), 16), None, None)
    with pytest.raises(ValueError, match=r'first batch, with x of shape \(16, 3, 32, 32\)'):
        fit(small_vae(), bad, epochs=1, progress=False, device='cpu')


def test_bad_inputs(data):
    with pytest.raises(TypeError, match=r'no \.loss\(batch\) method'): fit(nn.Linear(2, 2), data, epochs=1)
    ints = Data(TensorLoader(torch.ones(8, 1, 28, 28, dtype=torch.uint8), torch.zeros(8, dtype=torch.long), 4), None, None)
    with pytest.raises(TypeError, match='divide by 255'): fit(AE(), ints, epochs=1, progress=False)
    x = torch.rand(8, 1, 28, 28); x[0, 0, 0, 0] = float('nan')
    nan = Data(TensorLoader(x, torch.zeros(8, dtype=torch.long), 4), None, None)
    with pytest.raises(ValueError, match='contains 1 NaN or infinite'):
        fit(AE(), nan, epochs=1, progress=False)
    class Dict(AE):
        def loss(self, batch): return {'loss': super().loss(batch).loss}
    with pytest.raises(TypeError, match="NamedTuple whose first field is 'loss'"): fit(Dict(), data, epochs=1, progress=False)
    with pytest.raises(TypeError, match='valid_size'): fit(AE(), data, epochs=1, valid_size=3)


def test_nan_loss_stops_before_the_step(data):
    m = AE(nan_at=7)
    with pytest.raises(TrainingError, match='epoch 1, step 7') as e:
        fit(m, data, epochs=2, batch_size=64, device='cpu', progress=False)
    assert 'lower lr' in str(e.value) and e.value.history == []
    assert all(torch.isfinite(p).all() for p in m.parameters()), "the bad step must not reach the weights"
    m = AE(nan_at=1024//64 + 3)  # in the second epoch: the first is kept
    with pytest.raises(TrainingError, match='epoch 2, step 3') as e:
        fit(m, data, epochs=2, batch_size=64, device='cpu', progress=False)
    assert len(e.value.history) == 1 and e.value.history[0]['epoch'] == 1


def test_keyboard_interrupt_returns_history(data):
    m = AE(interrupt_at=1024//128 + 2)  # during the second epoch
    with pytest.warns(UserWarning, match='Interrupted: returning the 1 finished epochs'):
        h = fit(m, data, epochs=5, batch_size=128, device='cpu', progress=False)
    assert isinstance(h, History) and h.col('epoch') == [1]


# ------------------------------------------------------------------ config
@pytest.mark.parametrize('kw,msg', [
    (dict(epochs=-1), 'epochs must be'), (dict(epochs=2.0), 'epochs must be'),
    (dict(lr=0), 'lr must be a finite number > 0'),
    (dict(lr=-1e-3), 'lr must be a finite'), (dict(lr=float('inf')), 'lr must be a finite'),
    (dict(batch_size=0), 'batch_size must be'),
    (dict(batch_size=1.5), 'batch_size must be'), (dict(grad_clip=0), 'grad_clip must be a finite number > 0'),
    (dict(amp='int8'), 'amp must be'), (dict(amp=None), 'amp must be')])
def test_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg): TrainConfig(**kw)
    with pytest.raises(ValueError, match=msg): fit(AE(), (None, None), **kw)


def test_config_variants():
    cfg = TrainConfig(epochs=3, batch_size=None, amp='bf16', grad_clip=1.0, compile=True, fused=False)
    assert dataclasses.replace(cfg, lr=1e-4).lr == 1e-4 and cfg.batch_size is None
    assert set(dataclasses.asdict(TrainConfig())) >= {'epochs', 'lr', 'batch_size', 'seed', 'device', 'amp',
                                                      'fused', 'compile', 'data_on_device', 'progress'}


def test_grad_clip_and_weight_decay(data):
    h = fit(AE(), data, epochs=1, grad_clip=0.5, weight_decay=1e-4, device='cpu', progress=False)
    assert math.isfinite(h.last['train_loss'])


# ------------------------------------------------------------------ speed options
def test_amp_bf16_on_cpu(data):
    "amp='bf16' autocasts on the CPU too; the result is close to fp32 training"
    runs = {}
    for amp in (False, 'bf16'):
        set_seed(0); m = small_vae()
        runs[amp] = fit(m, data, epochs=2, batch_size=128, lr=3e-3, amp=amp, device='cpu', progress=False)
    assert abs(runs['bf16'].last['valid_loss'] - runs[False].last['valid_loss']) < 0.03*runs[False].last['valid_loss']
    h = fit(AE(), data, epochs=1, amp=True, fused=False, device='cpu', progress=False)  # amp=True: CUDA only
    assert math.isfinite(h.last['train_loss'])


@pytest.mark.slow  # compiling takes ~20 s on an idle 2-core machine, minutes on a busy one
def test_compile_accepted(data):
    pytest.importorskip('torch._inductor')
    set_seed(0); m = AE()
    d = Data(TensorLoader(data.train.x[:512], data.train.y[:512], 128, shuffle=True), data.valid, None)
    h = fit(m, d, epochs=2, compile=True, device='cpu', progress=False)
    assert h.last['train_loss'] < h[0]['train_loss']


def test_compile_auto_decides_by_the_run_length(data, monkeypatch):
    "`compile='auto'` times 20 eager steps, then compiles only if the rest of the run is long"
    import types, vae_book.steps as T
    set_seed(0)
    d = Data(TensorLoader(data.train.x[:512], data.train.y[:512], 16, shuffle=True), None, None)
    h = fit(AE(), d, epochs=1, compile='auto', device='cpu', progress=False)  # 32 steps
    assert h.config['compiled'] is False
    monkeypatch.setattr(T, '_compiled', lambda fns: ['compiled'])
    lp, hist = types.SimpleNamespace(fns=['eager']), History()
    T._maybe_compile(lp, per_step=1.0, steps_left=10_000, hist=hist)   # ~3 h left: worth it
    assert lp.fns == ['compiled'] and hist.config['compiled'] is True
    lp = types.SimpleNamespace(fns=['eager'])
    T._maybe_compile(lp, per_step=0.01, steps_left=1_000, hist=hist)   # 10 s left: not worth it
    assert lp.fns == ['eager'] and hist.config['compiled'] is False
    with pytest.raises(ValueError, match='compile'): TrainConfig(compile='sometimes')


def test_inductor_cache_outside_tmp(monkeypatch, tmp_path):
    import vae_book.steps as T
    monkeypatch.delenv('TORCHINDUCTOR_CACHE_DIR', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert T.inductor_cache() == tmp_path/'vae_book'/'inductor'/T._cache_key()
    assert T._cache_key().startswith('torch') and torch.backends.cpu.get_cpu_capability().lower() in T._cache_key()
    monkeypatch.delenv('TORCHINDUCTOR_CACHE_DIR')
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2')             # another instruction set: another folder
    assert T.inductor_cache() != tmp_path/'vae_book'/'inductor'/'x' and 'avx2' in T._cache_key()
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', str(tmp_path/'mine'))
    assert T.inductor_cache() == tmp_path/'mine'          # a user's choice is kept


def test_sync_free_path_on_cpu(data, monkeypatch):
    "The accelerator's NaN handling (device-side flag, fused Adam skipping flagged steps), run on the CPU"
    import vae_book.steps as T
    set_seed(0); plain = fit(AE(), data, epochs=2, batch_size=64, device='cpu', progress=False)
    monkeypatch.setattr(T, '_sync_free', lambda device: True)
    set_seed(0); m = AE()
    free = fit(m, data, epochs=2, batch_size=64, device='cpu', progress=False)
    assert strip(free) == strip(plain), "skipping nothing must change nothing"
    m = AE(nan_at=5)  # 16 steps per epoch, checked every 25: caught at the end of epoch 1
    with pytest.raises(TrainingError, match=r'non-finite in 1 of the last 16 steps .* at epoch 1, step 16;'):
        fit(m, data, epochs=2, batch_size=64, device='cpu', progress=False)
    assert all(torch.isfinite(p).all() for p in m.parameters()), "fused Adam must skip the flagged step"
    m = AE(nan_at=16 + 9)  # step 9 of epoch 2: the check counts steps per epoch, so at its end
    with pytest.raises(TrainingError, match=r'non-finite in 1 of the last 16 steps .* at epoch 2, step 16;') as e:
        fit(m, data, epochs=3, batch_size=64, device='cpu', progress=False)
    assert len(e.value.history) == 1 and all(torch.isfinite(p).all() for p in m.parameters())


# ------------------------------------------------------------------ CUDA
@pytest.mark.cuda
@pytest.mark.parametrize('on_device', [True, False])
def test_cuda_data_paths(data, on_device):
    "Data copied to the GPU once, or fed through pinned buffers: both learn the same"
    set_seed(0); m = small_vae()
    h = fit(m, data, epochs=2, device='cuda', amp=False, data_on_device=on_device, progress=False)
    assert next(m.parameters()).device.type == 'cuda' and h.last['valid_loss'] < h[0]['train_loss']


@pytest.mark.cuda
@pytest.mark.parametrize('amp', [True, 'bf16', 'fp16'])
def test_cuda_amp(data, amp):
    set_seed(0); m = small_vae()
    h = fit(m, data, epochs=2, device='cuda', amp=amp, progress=False)
    assert math.isfinite(h.last['valid_loss']) and h.last['valid_loss'] < h[0]['train_loss']


@pytest.mark.cuda
def test_cuda_nan_steps_skipped_and_reported(data):
    m = AE(nan_at=5)
    with pytest.raises(TrainingError, match=r'non-finite in 1 of the last 16 steps .* at epoch 1, step 16;'):
        fit(m, data, epochs=1, batch_size=64, device='cuda', amp=False, progress=False)
    assert all(torch.isfinite(p).all() for p in m.parameters()), "fused Adam must skip the flagged step"


@pytest.mark.cuda
def test_cuda_compile(data):
    h = fit(small_vae(), data, epochs=2, device='cuda', compile=True, progress=False)
    assert h.last['valid_loss'] < h[0]['train_loss']


_DENORMALS = '''
import torch
torch.set_num_threads(2)
tiny = torch.full((2_000_000,), 1e-39)              # fp32 denormals
def left(): return int((tiny*1.0).ne(0).sum())     # DAZ on a thread: its share reads as 0
left()                                              # the OpenMP pool exists from here on
torch.set_flush_denormal(True)
main_only = left()                                  # the workers did not get the flag
torch.set_flush_denormal(False)
from vae_book.models.vae import mlp_vae
from vae_book.train import fit
x = torch.rand(64, 1, 28, 28)
h = fit(mlp_vae(hidden_dim=16, latent_dim=2), (x, torch.zeros(64, dtype=torch.long)), epochs=1,
        batch_size=32, progress=False, device='cpu', monitor=lambda m: {'left': left()},
        monitor_every=1)
print(main_only, max(r['left'] for r in h.monitor), left())
'''


def test_fit_flushes_denormals_on_every_thread():
    "torch.set_flush_denormal reaches only its own thread; fit's flag reaches the OpenMP pool"
    import os, subprocess, sys
    from vae_book.core import _openmp
    if _openmp() is None or (os.cpu_count() or 1) < 2:
        pytest.skip('needs torch on OpenMP (Linux x86) and 2 CPUs')
    r = subprocess.run([sys.executable, '-c', _DENORMALS], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    main_only, during, after = map(int, r.stdout.split()[-3:])
    assert main_only > 0, "the main-thread flag alone flushed every thread: the test shows nothing"
    assert during == 0, f"{during} denormals survived on some thread while fit trained"
    assert after == 2_000_000, "fit did not put back the setting it found (no flushing)"
