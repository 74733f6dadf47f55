#!/usr/bin/env python3
"""Training speed: `vae_book.fit` against the canonical pytorch/examples VAE loop, and against the GEMM limit.

Trains the same 784-400-20 VAE (Bernoulli decoder on grey levels, Adam) in one run, two ways:

  - **reference**: the loop of pytorch/examples `vae/main.py`, written out here: a torchvision dataset with
    `transforms.ToTensor()`, a `DataLoader` (batch 128, shuffled, `num_workers=0` as that script uses on CPU),
    sigmoid + `F.binary_cross_entropy(reduction='sum')` + the KL term, `Adam(lr=1e-3)`, `loss.item()` per step;
  - **vae_book.fit** on `get_data(..., binarize=None)` with `mlp_vae()`, in one or more configurations
    (`--fit`): the book's defaults, and the fast path (larger batch, bf16 autocast where the CPU has bf16
    instructions, optionally `torch.compile`).

Both train on all 60,000 training images and are scored with the same evaluator (`vae_book.train.evaluate`,
negative ELBO in nats per image) on the same 10,000 test images after every epoch (not timed). It prints
seconds per epoch (min and median over every epoch of every repeat), images per second, the speed-up over the
reference, the test loss, the seconds each needed to reach a test loss (`--target`, default: the reference's
final loss), and the **GEMM limit**: the matmul FLOPs of one epoch's forward and backward passes divided by
the throughput `torch.mm` reaches at exactly those shapes on this machine (best of several timings), i.e.
the time an epoch would take if it did nothing but its matrix products at that speed. `--iw-k/--iw-n` times
`vae_book.metrics.iw_nll` (k = 5000) on a subset of the test set and extrapolates to all 10,000 images.

    python bench/speed.py --dataset fashion --epochs 3                 # the table in bench/README.md
    python bench/speed.py --dataset fashion --epochs 3 --repeats 3 --fit book,fast,fast-bf16
    python bench/speed.py --dataset fashion --epochs 8 --target 250    # time to reach a test loss
    python bench/speed.py --fit fast --no-ref --iw-n 0 --epochs 1      # a quick look
    python bench/speed.py --repeats 3 --iw-n 0 --fit fast,proto-eager,proto-compiled-loss

Repeats are interleaved: repeat 1 of every trainer, then repeat 2 of every trainer,
..., so a load change during the run slows all of them alike. `proto-*` configurations
are not `fit`: they run the prototype step of `bench/fast_step.py` (what `fit`'s fast
path should do; issue 16) on the same data, model, loss and optimizer. The record names
the path each run took and what the CPU offers (`meta.cpu`: PyTorch's kernel level, the
ISA flags that matter, native bf16, emulation variables).

Timings are wall-clock and only mean something on an otherwise idle machine: the load average before and
after is recorded in the JSON (`--out`, default `bench/results/speed_<device>.json`).
"""
from __future__ import annotations
import argparse, json, math, os, platform, resource, shlex, statistics, sys, time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vae_book.core import get_device, set_seed
from vae_book.data import TensorLoader, book_dataset, data_root, get_data, load_images
from vae_book.losses.elbo import ELBO
from vae_book.metrics import iw_nll
from vae_book.models.vae import mlp_vae
from vae_book.train import evaluate, fit

from _common import cpu_caps, cpu_name, onednn_bf16
import fast_step

ROOT = Path(__file__).resolve().parent.parent

# Named `fit` configurations: TrainConfig overrides. 'book' is TrainConfig's defaults.
FIT_CONFIGS = {
    'book': {},
    'fast': dict(batch_size=256, lr=3e-3),
    'fast-bf16': dict(batch_size=256, lr=3e-3, amp='bf16'),
    'bf16-512': dict(batch_size=512, lr=4e-3, amp='bf16'),
    'fast-compile': dict(batch_size=256, lr=3e-3, compile=True),
    'bf16-compile': dict(batch_size=256, lr=3e-3, amp='bf16', compile=True),
    'bf16-384-compile': dict(batch_size=384, lr=4e-3, amp='bf16', compile=True),
}
# The prototype of issue 16 (bench/fast_step.py), not `fit`: its named variants.
PROTO_CONFIGS = {f'proto-{k}': k for k in fast_step.VARIANTS}


# ------------------------------------------------------------------------------------------- reference
class RefVAE(nn.Module):
    "pytorch/examples vae/main.py L46-75 (layers renamed by role): 784-400-20, sigmoid output"
    def __init__(self):
        super().__init__()
        self.hidden, self.to_mu, self.to_logvar = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.dec_hidden, self.to_x = nn.Linear(20, 400), nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.hidden(x))
        return self.to_mu(h1), self.to_logvar(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5*logvar)
        return mu + torch.randn_like(std)*std

    def decode(self, z): return torch.sigmoid(self.to_x(F.relu(self.dec_hidden(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    def loss(self, batch) -> ELBO:
        "The protocol, so that `vae_book.train.evaluate` scores both models identically"
        recon_x, mu, logvar = self(batch.x)
        bce = F.binary_cross_entropy(recon_x, batch.x.view(-1, 784), reduction='sum')
        kld = -0.5*torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        n = len(batch.x)
        return ELBO((bce + kld)/n, bce/n, kld/n)


def ref_loss_function(recon_x, x, mu, logvar):
    "pytorch/examples vae/main.py L80-88"
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    kld = -0.5*torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def run_reference(name, epochs, batch_size, lr, seed, device, test, on_epoch):
    "pytorch/examples vae/main.py `train()` (without its log prints), timing each epoch"
    from torchvision import datasets, transforms
    load_images(name)  # make sure torchvision's raw files are staged under data_root()
    cls = {'fashion': datasets.FashionMNIST, 'mnist': datasets.MNIST}[name]
    set_seed(seed)
    t = time.perf_counter()
    ds = cls(str(data_root()), train=True, download=False, transform=transforms.ToTensor())
    kwargs = {'num_workers': 1, 'pin_memory': True} if device.type == 'cuda' else {}
    train_loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, **kwargs)
    setup = time.perf_counter() - t
    model = RefVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        t = time.perf_counter()
        model.train(); train_loss = 0
        for data, _ in train_loader:
            data = data.to(device)
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = ref_loss_function(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        if device.type == 'cuda': torch.cuda.synchronize()
        on_epoch(time.perf_counter() - t, evaluate(model, test)['loss'], train_loss/len(ds))
    t = time.perf_counter()
    for data, _ in train_loader: data.to(device)  # the loader alone: its share of an epoch
    return model, setup, len(ds), time.perf_counter() - t


def _data(name, **kw):
    "Grey-level images, all training images in the training set ('digits' has its fixed split)"
    return get_data(name, binarize=None, valid_size=None if name == 'digits' else 0, **kw)


def run_fit(name, epochs, overrides, seed, device, on_epoch):
    "`vae_book.fit` on in-memory data, the test set as its validation set (evaluated outside `time`)"
    t = time.perf_counter()
    bs = overrides.get('batch_size', 128)
    data = _data(name, batch_size=bs)
    setup = time.perf_counter() - t
    set_seed(seed); model = mlp_vae()
    hist = fit(model, (data.train, data.test), epochs=epochs, seed=seed, device=str(device),
               progress=False, **overrides)
    for r in hist: on_epoch(r['time'], r['valid_loss'], r['train_loss'])
    return model, setup, len(data.train.x)


def run_proto(name, epochs, variant, seed, device, test, on_epoch):
    "The prototype step of bench/fast_step.py (CPU): same model, loss and Adam"
    if device.type != 'cpu': raise SystemExit("the proto-* configurations are CPU-only")
    t = time.perf_counter()
    x = _data(name).train.x
    setup = time.perf_counter() - t
    tr = fast_step.FastTrainer(x, variant, seed)
    for _ in range(epochs):
        sec, train_loss = tr.epoch()
        on_epoch(sec, evaluate(tr.model, test)['loss'], train_loss)
    return tr.model, setup, len(x), tr.compile_s


# ------------------------------------------------------------------------------------------- GEMM limit
class Gemm(NamedTuple):
    flops: float      # matmul FLOPs of one epoch, forward + backward
    seconds: float    # the same products at the best measured torch.mm speed
    gflops: float     # flops / seconds


def _best(f, n, repeats):
    f(); f()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n): f()
        best = min(best, (time.perf_counter() - t)/n)
    return best


def gemm_limit(model:nn.Module, n_images:int, batch_size:int, device, dtype=torch.float32,
               repeats:int=7) -> Gemm:
    "Time every matmul of one training step at its real shape; scale to an epoch of `n_images`"
    lins = [m for m in model.modules() if isinstance(m, nn.Linear)]
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    def step_time(b):
        total, flops, cache = 0., 0., {}
        for i, m in enumerate(lins):
            shape = (m.in_features, m.out_features)
            if shape not in cache:
                x = torch.randn(b, shape[0], device=device, dtype=dtype)
                w = torch.randn(shape[1], shape[0], device=device, dtype=dtype)
                bias = torch.randn(shape[1], device=device, dtype=dtype)
                g = torch.randn(b, shape[1], device=device, dtype=dtype)
                n = max(3, int(2e8 // (2*b*shape[0]*shape[1])))
                def timed(f): return _best(lambda: (f(), sync()), n, repeats)
                cache[shape] = (timed(lambda: torch.addmm(bias, x, w.t())),   # forward
                                timed(lambda: torch.mm(g.t(), x)),            # weight gradient
                                timed(lambda: torch.mm(g, w)))                # input gradient
            fwd, dw, dx = cache[shape]
            first = i == 0  # the data needs no gradient
            total += fwd + dw + (0 if first else dx)
            flops += 2*b*shape[0]*shape[1]*(2 if first else 3)
        return total, flops
    full, rest = divmod(n_images, batch_size)
    t, fl = step_time(batch_size); t, fl = t*full, fl*full
    if rest: tr, fr = step_time(rest); t += tr; fl += fr
    return Gemm(fl, t, fl/t/1e9)


# ------------------------------------------------------------------------------------------- IW-NLL
def time_iw_nll(model, test:TensorLoader, k:int, n:int, batch_size:int) -> dict:
    "Time `iw_nll` with `k` samples on the first `n` test images; extrapolate to the whole test set"
    sub = TensorLoader(test.x[:n], test.y[:n], batch_size)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    set_seed(0); t = time.perf_counter()
    nll = iw_nll(model, sub, k=k, progress=False)
    dt = time.perf_counter() - t
    return {'k': k, 'n_images': n, 'seconds': dt, 'images_per_s': n/dt, 'batch_size': batch_size,
            'decoder_evals_per_s': n*k/dt, 'n_test': len(test.x),
            'seconds_full_test_extrapolated': dt*len(test.x)/n, 'iw_nll_subset': nll,
            'max_rss_growth_mb': (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0)/1024}


# ------------------------------------------------------------------------------------------- driver
def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', default=None, help="fashion or mnist (default: book_dataset())")
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--repeats', type=int, default=2, help="independent runs of each trainer (seeds s, s+1, ...)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--fit', default='book,fast,fast-bf16,bf16-512,bf16-384-compile', help=f"fit configs, from {sorted(FIT_CONFIGS)}")
    p.add_argument('--no-ref', action='store_true', help="skip the reference loop")
    p.add_argument('--ref-batch-size', type=int, default=128)
    p.add_argument('--ref-lr', type=float, default=1e-3)
    p.add_argument('--target', type=float, default=None,
                   help="test loss to reach (default: the reference's final test loss)")
    p.add_argument('--threads', type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument('--device', default=None)
    p.add_argument('--clock', choices=['wall', 'cpu'], default='wall',
                   help="'cpu' times with this process's CPU time (with --threads 1 only): a stand-in for an "
                        "idle single core when the machine is shared")
    p.add_argument('--iw-k', type=int, default=5000)
    p.add_argument('--iw-n', type=int, default=100, help="test images for the IW-NLL timing; 0 skips it")
    p.add_argument('--iw-batch', type=int, default=100)
    p.add_argument('--out', default=None, help="JSON path (default bench/results/speed_<device>.json)")
    return p.parse_args(argv)


def _load():
    try: return os.getloadavg()
    except OSError: return None


def summarize(run, target, ref_sec):
    per = [t for rep in run['epoch_seconds'] for t in rep]
    s = {'sec_per_epoch_min': min(per), 'sec_per_epoch_median': statistics.median(per),
         'images_per_s': run['n_train']/min(per),
         'final_test_loss_mean': statistics.mean(rep[-1] for rep in run['test_loss']),
         'final_test_loss_all': [rep[-1] for rep in run['test_loss']]}
    if target is not None:
        # seconds of training until the test loss first reaches `target`; min over repeats; None if never
        hits = []
        for secs, losses in zip(run['epoch_seconds'], run['test_loss']):
            cum = 0.
            for t, l in zip(secs, losses):
                cum += t
                if l <= target: hits.append(cum); break
        s['seconds_to_target'] = min(hits) if hits else None
    if ref_sec:
        s['speedup_vs_reference'] = ref_sec[0]/s['sec_per_epoch_min']  # best vs best
        s['speedup_vs_reference_median'] = ref_sec[1]/s['sec_per_epoch_median']
    if run.get('gemm'): s['gemm_fraction'] = run['gemm']['seconds']/s['sec_per_epoch_min']
    return s


def table(res) -> str:
    rows = ["| trainer | batch | lr | precision | s/epoch (min) | s/epoch (median) | images/s | "
            "speed-up (min) | speed-up (median) | test loss | s to target | "
            "GEMM limit s/epoch | of GEMM limit |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v, p='.2f': '–' if v is None else format(v, p)
    for r in res['runs']:
        s, g = r['summary'], r.get('gemm') or {}
        rows.append(f"| {r['name']} | {r['batch_size']} | {r['lr']:g} | {r['precision']} | "
                    f"{f(s['sec_per_epoch_min'])} | {f(s['sec_per_epoch_median'])} | {s['images_per_s']:,.0f} | "
                    f"{f(s.get('speedup_vs_reference'), '.2f')}× | "
                    f"{f(s.get('speedup_vs_reference_median'), '.2f')}× | "
                    f"{s['final_test_loss_mean']:.2f} | "
                    f"{f(s.get('seconds_to_target'), '.1f')} | {f(g.get('seconds'))} | "
                    f"{f(100*s['gemm_fraction'], '.0f') + '%' if s.get('gemm_fraction') else '–'} |")
    return '\n'.join(rows)


def main(argv=None):
    a = parse(argv)
    if a.threads: torch.set_num_threads(a.threads)
    if a.clock == 'cpu':
        if torch.get_num_threads() != 1: raise SystemExit("--clock cpu needs --threads 1")
        time.perf_counter = time.process_time  # every timer here and in fit now counts this process's CPU time
    name = a.dataset or book_dataset()
    if name == 'digits' and not a.no_ref:  # the reference reads a torchvision dataset
        print("the reference loop needs torchvision's MNIST or Fashion-MNIST; MNIST is not "
              "here, so: --dataset fashion", flush=True)
        name = 'fashion'
    device = get_device(a.device)
    bf16_ok = device.type == 'cuda' or onednn_bf16()
    fit_names = [s for s in a.fit.split(',') if s]
    known = sorted(FIT_CONFIGS) + sorted(PROTO_CONFIGS)
    for s in fit_names:
        if s not in known:
            raise SystemExit(f"unknown --fit config {s!r}; choose from {known}")
    if any(FIT_CONFIGS.get(s, {}).get('compile') or s in PROTO_CONFIGS
           and fast_step.VARIANTS[PROTO_CONFIGS[s]][3] for s in fit_names):
        fast_step.inductor_cache()  # compiled runs: Inductor's caches outlive the run
    argv_s = ' '.join(map(shlex.quote, ['bench/speed.py', *(argv or sys.argv[1:])]))
    res = {'meta': {'command': 'python ' + argv_s,
                    'date': time.strftime('%Y-%m-%d %H:%M:%S'), 'torch': torch.__version__,
                    'python': platform.python_version(), 'device': str(device),
                    'device_name': (torch.cuda.get_device_name(device)
                                    if device.type == 'cuda' else cpu_name()),
                    'cpu_count': os.cpu_count(), 'threads': torch.get_num_threads(),
                    'cpu_capability': torch.backends.cpu.get_cpu_capability(),
                    'cpu': cpu_caps(), 'dataset': name, 'epochs': a.epochs,
                    'repeats': a.repeats, 'clock': a.clock,
                    'interleaved': 'repeats', 'loadavg_before': _load()},
           'runs': []}
    print(f"# speed.py: {name}, {a.epochs} epochs x {a.repeats} repeats on "
          f"{res['meta']['device_name']} ({device}, {res['meta']['cpu']['kind']}, "
          f"{torch.get_num_threads()} threads, {a.clock} clock), load {_load()}",
          flush=True)

    jobs = ([] if a.no_ref else [('reference (pytorch/examples)', None)]) + [
        (f'bench/fast_step.py {s}' if s in PROTO_CONFIGS else f'vae_book.fit {s}', s)
        for s in fit_names]
    test = _data(name).test
    gemm_cache = {}
    fitted = None
    runs = []
    for label, cfg in jobs:
        if cfg in PROTO_CONFIGS:
            bs, lr, adam, comp, comp_opt = fast_step.VARIANTS[PROTO_CONFIGS[cfg]]
            over = dict(batch_size=bs, lr=lr, adam=adam, compile=comp,
                        compile_optimizer=comp_opt)
            path = 'prototype step (bench/fast_step.py)'
        else:
            over = dict(FIT_CONFIGS[cfg]) if cfg else {}
            path = 'vae_book.fit' if cfg else 'reference loop (DataLoader)'
        bs = a.ref_batch_size if cfg is None else over.get('batch_size', 128)
        lr = a.ref_lr if cfg is None else over.get('lr', 1e-3)
        prec = 'bf16 autocast' if over.get('amp') == 'bf16' else (
            'bf16 autocast' if device.type == 'cuda' and cfg is not None
            and over.get('amp', True) else 'fp32')
        if prec.startswith('bf16') and not bf16_ok: print(f"skipping {label}: no bf16 here"); continue
        runs.append({'name': label, 'path': path, 'config': over, 'batch_size': bs,
                     'lr': lr,
                     'precision': prec + (', compiled' if over.get('compile') else ''),
                     'epoch_seconds': [], 'test_loss': [], 'train_loss': [],
                     'first_step_seconds': []})
    for r in range(a.repeats):  # interleaved: repeat r of every trainer, then r + 1
        for run in runs:
            cfg, label = run['name'].split(' ')[-1], run['name']
            secs, losses, trains = [], [], []
            def on_epoch(t, l, tl): secs.append(t); losses.append(l); trains.append(tl)
            if run['path'].startswith('reference'):
                model, setup, n, loader_s = run_reference(
                    name, a.epochs, run['batch_size'], run['lr'], a.seed + r, device,
                    test, on_epoch)
                run['loader_only_seconds'] = min(
                    run.get('loader_only_seconds', math.inf), loader_s)
            elif cfg in PROTO_CONFIGS:
                model, setup, n, first = run_proto(name, a.epochs, PROTO_CONFIGS[cfg],
                                                   a.seed + r, device, test, on_epoch)
                run['first_step_seconds'].append(first)  # compile time, inside epoch 1
            else:
                model, setup, n = run_fit(name, a.epochs, run['config'], a.seed + r,
                                          device, on_epoch)
                fitted = model
            run['epoch_seconds'].append(secs); run['test_loss'].append(losses)
            run['train_loss'].append(trains)
            run['setup_seconds'] = min(run.get('setup_seconds', math.inf), setup)
            run['n_train'] = n
            print(f"  {label} repeat {r+1}: s/epoch {[round(s, 2) for s in secs]}, "
                  f"test loss {[round(l, 2) for l in losses]}, load {_load()[0]:.2f}",
                  flush=True)
    for run in runs:
        key = (run['batch_size'], run['precision'].startswith('bf16'))
        if key not in gemm_cache:
            gemm_cache[key] = gemm_limit(mlp_vae(), run['n_train'], key[0], device,
                                         torch.bfloat16 if key[1] else torch.float32)._asdict()
        run['gemm'] = gemm_cache[key]
        res['runs'].append(run)

    ref = next((r for r in res['runs'] if r['name'].startswith('reference')), None)
    target = a.target
    if target is None and ref is not None: target = statistics.mean(rep[-1] for rep in ref['test_loss'])
    ref_sec = None
    if ref is not None:
        per = [t for rep in ref['epoch_seconds'] for t in rep]
        ref_sec = (min(per), statistics.median(per))
    for r in res['runs']: r['summary'] = summarize(r, target, ref_sec)
    res['target_test_loss'] = target
    res['target_is_reference_final'] = a.target is None
    if a.iw_n and fitted is not None:
        res['iw_nll'] = time_iw_nll(fitted, test, a.iw_k, a.iw_n, a.iw_batch)
    res['meta']['loadavg_after'] = _load()

    print()
    print(table(res))
    g = res['runs'][-1]['gemm']
    print(f"\nGEMM limit: {g['flops']/1e9:.0f} GFLOP of matmuls per epoch at batch {res['runs'][-1]['batch_size']}, "
          f"{g['gflops']:.0f} GFLOP/s measured at those shapes -> {g['seconds']:.2f} s/epoch.")
    if ref is not None: print(f"The reference's DataLoader alone (one pass, no model): "
                              f"{ref['loader_only_seconds']:.2f} s of its {ref['summary']['sec_per_epoch_min']:.2f} s/epoch.")
    if target is not None: print(f"Target test loss: {target:.2f} nats (s to target: training seconds until an "
                                  f"end-of-epoch test loss <= target, best repeat).")
    if 'iw_nll' in res:
        w = res['iw_nll']
        print(f"IW-NLL k={w['k']}: {w['n_images']} test images in {w['seconds']:.1f} s "
              f"({w['decoder_evals_per_s']:,.0f} decoder evaluations/s) -> {w['seconds_full_test_extrapolated']:.0f} s "
              f"for all {w['n_test']:,} (extrapolated); max RSS grew {w['max_rss_growth_mb']:.0f} MB.")
    print(f"Load average before {res['meta']['loadavg_before']}, after {res['meta']['loadavg_after']}.")
    out = Path(a.out) if a.out else ROOT/'bench'/'results'/f'speed_{device.type}.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + '\n')
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return res


if __name__ == '__main__':
    main()
