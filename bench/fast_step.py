#!/usr/bin/env python3
"""A fast fp32 training step for the MLP VAE on CPUs: a prototype of `fit`'s fast path.

Issue 16. Same model (`mlp_vae()`), same loss (`model.loss`, the negative ELBO), same
Adam and the same in-memory data as `fit`; what changes is how one step runs:

  - `batches`: one shuffled permutation per epoch; each batch is gathered with
    `index_select(out=...)` into a preallocated buffer (no allocation, no collation);
  - `make_step(..., compile=False)`: a plain eager step (loss, backward,
    `Adam(fused=True)`) with no `.item()`: it returns the detached loss, and the epoch
    reads all of them once at its end;
  - `make_step(..., compile=True)`: the same step with `model.loss` compiled by
    `torch.compile` (Inductor fuses the element-wise work of forward and backward
    around the matmuls), optionally `opt.step` too;
  - `inductor_cache()`: Inductor's FX-graph and AOT-autograd caches in a folder that
    outlives the process (not /tmp), so only the first run on a machine compiles cold.

`python bench/fast_step.py` trains the reference loop of `bench/speed.py` and the chosen
variants interleaved in chunks of ~2,560 images (a load change hits all of them alike)
and prints seconds per epoch, the ratio to the reference, test loss and first-step
(compile) time. `--profile VARIANT` prints a `torch.profiler` table of one epoch by op;
`--micro` prints the floor (best of many) of each piece of one step in ms.

    python bench/fast_step.py --variants eager,compiled-loss --epochs 3 --repeats 3
    python bench/fast_step.py --threads 1 --clock cpu       # a busy machine: CPU time
    python bench/fast_step.py --profile eager --threads 1
    python bench/fast_step.py --micro --threads 2
"""
from __future__ import annotations
import argparse, functools, math, os, statistics, sys, time
from pathlib import Path

import torch
from torch import Tensor

from vae_book.core import flush_denormals
from vae_book.data import Batch
from vae_book.steps import inductor_cache as fit_inductor_cache

from _common import cpu_caps


def inductor_cache(folder:str|os.PathLike|None=None) -> Path:
    "Inductor's on-disk caches in `folder`, else where `fit` keeps them"
    if folder is not None: os.environ['TORCHINDUCTOR_CACHE_DIR'] = str(folder)
    import torch._inductor.config as inductor
    import torch._functorch.config as functorch
    inductor.fx_graph_cache = True          # compiled kernels, by graph and config
    functorch.enable_autograd_cache = True  # forward/backward graphs (AOT autograd)
    return fit_inductor_cache()  # one folder per torch version and CPU kernel level


def batches(x:Tensor, # (N, ...) training images, in memory
            batch_size:int,
            g:torch.Generator, # draws this epoch's permutation
            drop_last:bool=False, # skip the short last batch (one compiled shape only)
           ):
    "One epoch of shuffled batches of `x`, gathered into one reused buffer"
    n = len(x)
    perm = torch.randperm(n, generator=g)
    buf = torch.empty((batch_size, *x.shape[1:]), dtype=x.dtype)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        j = perm[i:i+batch_size]
        yield torch.index_select(x, 0, j, out=buf[:len(j)])


def adam(params, lr:float, kind:str='fused') -> torch.optim.Adam:
    "Adam: 'fused' (one kernel for all tensors), 'foreach' or 'loop' (one per tensor)"
    if kind not in ('fused', 'foreach', 'loop'):
        raise ValueError(f"unknown Adam kind {kind!r}")
    return torch.optim.Adam(params, lr=lr, fused=kind == 'fused' or None,
                            foreach=(kind == 'foreach') if kind != 'fused' else None)


def make_step(model, opt, compile:bool=False, compile_opt:bool=True, **compile_kw):
    "`step(x) -> loss` (detached, unread): loss, backward, an Adam step; maybe compiled"
    def loss_of(x): return model.loss(Batch(x, x))[0]  # y is unused by the VAE's loss
    def update(): opt.step()
    if compile:
        loss_of = torch.compile(loss_of, **compile_kw)  # forward and backward, fused
        if compile_opt: update = torch.compile(update)
    def step(x:Tensor) -> Tensor:
        loss = loss_of(x)
        loss.backward()
        update()
        opt.zero_grad(set_to_none=True)
        return loss.detach()
    return step


# ---------------------------------------------------------------------------- trainers
# A trainer has `.steps()` (one epoch, a step at a time), `.epoch() -> (s, train loss)`,
# `.model`, `.compile_s`. Variants: (batch size, lr, Adam, compile loss, compile Adam).
# ('foreach' Adam under torch.compile fails on CPUs in torch 2.14.1: "Expected scalars
# to be on CPU, got meta instead".)
VARIANTS = {
    'book': (128, 1e-3, 'fused', False, False),
    'eager': (256, 3e-3, 'fused', False, False),
    'eager-foreach': (256, 3e-3, 'foreach', False, False),
    'eager-384': (384, 5e-3, 'fused', False, False),
    'eager-512': (512, 6e-3, 'fused', False, False),
    'eager-512-8e-3': (512, 8e-3, 'fused', False, False),
    'compiled-loss': (256, 3e-3, 'fused', True, False),
    'compiled': (256, 3e-3, 'fused', True, True),
    'compiled-240': (240, 3e-3, 'fused', True, True),
    'compiled-512': (512, 4e-3, 'fused', True, True),
    'compiled-noguard': (256, 3e-3, 'fused', True, False),
    'compiled-autotune': (256, 3e-3, 'fused', True, False),
}
COMPILE_KW = {  # torch.compile options of some variants
    # no guard checks on the modules' attributes each call (the model never changes)
    'compiled-noguard': dict(options={
        'guard_filter_fn': torch.compiler.skip_guard_on_all_nn_modules_unsafe}),
    # Inductor's own C++ GEMM templates, autotuned against MKL, with fused epilogues
    'compiled-autotune': dict(mode='max-autotune-no-cudagraphs'),
}


class FastTrainer:
    "The prototype step on in-memory data: `epoch()` trains one pass and times it"
    def __init__(self, x:Tensor, variant:str, seed:int, drop_last:bool=False):
        from vae_book.core import set_seed
        from vae_book.models.vae import mlp_vae
        bs, lr, kind, comp, comp_opt = VARIANTS[variant]
        set_seed(seed)
        self.model, self.x, self.bs, self.drop_last = mlp_vae(), x, bs, drop_last
        self.opt = adam(self.model.parameters(), lr, kind)
        self.step = make_step(self.model, self.opt, comp, comp_opt,
                              **COMPILE_KW.get(variant, {}))
        self.g = torch.Generator().manual_seed(seed)
        self.compiled, self.compile_s, self.n_epochs = comp, 0., 0

    def steps(self):
        "One epoch, a step at a time: yields batch sizes; sets `.train_loss` at the end"
        self.model.train()
        losses, sizes = [], []
        for xb in batches(self.x, self.bs, self.g, self.drop_last):
            n = len(xb)
            if self.compiled and (self.n_epochs == 0 and not losses or n != self.bs):
                t = time.perf_counter(); losses.append(self.step(xb))  # may compile
                self.compile_s += time.perf_counter() - t
            else: losses.append(self.step(xb))
            sizes.append(n)
            yield n
        w = torch.tensor(sizes, dtype=torch.float32)
        self.train_loss = float((torch.stack(losses)*w).sum()/w.sum())  # the one read
        self.n_epochs += 1

    def epoch(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        for _ in self.steps(): pass
        return time.perf_counter() - t0, self.train_loss


class RefTrainer:
    "pytorch/examples `vae/main.py` `train()` as in `bench/speed.py`, one epoch a call"
    def __init__(self, name:str, seed:int):
        from torchvision import datasets, transforms
        from vae_book.core import set_seed
        from vae_book.data import data_root, load_images
        from speed import RefVAE, ref_loss_function
        load_images(name)
        cls = {'fashion': datasets.FashionMNIST, 'mnist': datasets.MNIST}[name]
        set_seed(seed)
        self.ds = cls(str(data_root()), train=True, download=False,
                      transform=transforms.ToTensor())
        self.loader = torch.utils.data.DataLoader(self.ds, batch_size=128, shuffle=True)
        self.model = RefVAE()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn, self.compile_s = ref_loss_function, 0.

    def steps(self):
        self.model.train(); train_loss = 0
        for data, _ in self.loader:
            self.opt.zero_grad()
            recon_batch, mu, logvar = self.model(data)
            loss = self.loss_fn(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            self.opt.step()
            yield len(data)
        self.train_loss = train_loss/len(self.ds)

    def epoch(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        for _ in self.steps(): pass
        return time.perf_counter() - t0, self.train_loss


def interleaved_epoch(trainers:dict, chunk:int=2560) -> dict:
    "One epoch of every trainer, round-robin, >= `chunk` images a turn: seconds each"
    its = {v: tr.steps() for v, tr in trainers.items()}
    secs = dict.fromkeys(trainers, 0.)
    while its:
        for v in list(its):
            flush_denormals(v != 'reference')  # pytorch/examples does not flush; fit does
            t, n = time.perf_counter(), 0
            try:
                while n < chunk: n += next(its[v])
            except StopIteration: del its[v]
            secs[v] += time.perf_counter() - t
    return secs


# ----------------------------------------------------------------------------- profile
def profile_epoch(trainer, rows:int=30) -> str:
    "One epoch of `trainer` under `torch.profiler`: a table by op, and the GEMMs' share"
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as p:
        wall, _ = trainer.epoch()
    ka = p.key_averages()
    # self time of every op: compiled kernels appear as one "graph" entry each
    ops = sum(e.self_cpu_time_total for e in ka)/1e6
    gemm = sum(e.self_cpu_time_total for e in ka
               if e.key in ('aten::mm', 'aten::addmm'))/1e6
    table = ka.table(sort_by='self_cpu_time_total', row_limit=rows,
                     max_name_column_width=55)
    return (f"{table}\nprofiled epoch: {wall:.2f} s wall; ops' self time {ops:.2f} s, "
            f"of which GEMM (mm, addmm) {gemm:.2f} s = {100*gemm/wall:.0f}% of wall")


# ------------------------------------------------------------------------------- micro
def _best_ms(fns:dict, n:int=20, repeats:int=15) -> dict:
    "Best ms per call of each of `fns`, tried in turn `repeats` times: load hits all"
    for f in fns.values(): f(); f()
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(n): f()
            best[k] = min(best[k], (time.perf_counter() - t)/n)
    return {k: 1e3*v for k, v in best.items()}


def gemm_floor(model:torch.nn.Module, batch_size:int):
    "`f()` running every matmul of one training step of `model`'s Linears at its shape"
    lin = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    ins = [(torch.randn(batch_size, m.in_features),
            torch.randn(batch_size, m.out_features), m) for m in lin]
    def gemms():  # forward, weight gradient, input gradient (none for the first layer)
        for i, (a, g, m) in enumerate(ins):
            torch.addmm(m.bias, a, m.weight.t()); torch.mm(g.t(), a)
            if i: torch.mm(g, m.weight)
    return gemms


def step_costs(x:Tensor, batch_size:int=256, lr:float=3e-3,
               variants=('eager', 'compiled-loss', 'compiled-noguard')) -> dict:
    "ms per step of each piece and of whole steps, best of many tries, interleaved"
    from vae_book.models.vae import mlp_vae
    torch.manual_seed(0)
    xb = x[:batch_size].clone()
    gemms = gemm_floor(mlp_vae(), batch_size)  # as bench/speed.py's GEMM limit
    model = mlp_vae(); opt = adam(model.parameters(), lr, 'fused')
    opt2 = adam(model.parameters(), lr, 'foreach')
    perm = torch.randperm(len(x)); buf = torch.empty((batch_size, *x.shape[1:]))
    fns = {'gemm': gemms,
           'gather (index_select)': lambda: torch.index_select(x, 0, perm[:batch_size],
                                                               out=buf),
           'gather (x[j])': lambda: x[perm[:batch_size]],
           'forward + backward (eager)':
               lambda: model.loss(Batch(xb, xb))[0].backward(),
           'Adam fused': opt.step, 'Adam foreach': opt2.step}
    for name in variants:
        _, _, kind, comp, comp_opt = VARIANTS[name]
        m = mlp_vae(); o = adam(m.parameters(), lr, kind)
        fns[f'step {name}'] = functools.partial(
            make_step(m, o, comp, comp_opt, **COMPILE_KW.get(name, {})), xb)
    return _best_ms(fns)


# ------------------------------------------------------------------------------ driver
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--dataset', default='fashion')
    p.add_argument('--variants', default='eager,compiled-loss,compiled-noguard',
                   help=f"from {sorted(VARIANTS)}")
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--clock', choices=['wall', 'cpu'], default='wall',
                   help="'cpu': this process's CPU time (--threads 1): a busy machine")
    p.add_argument('--no-ref', action='store_true')
    p.add_argument('--drop-last', action='store_true')
    p.add_argument('--no-cache', action='store_true',
                   help="leave Inductor's cache folder as it is")
    p.add_argument('--micro', action='store_true', help="ms per step of each piece")
    p.add_argument('--profile', default=None, metavar='VARIANT',
                   help="profile one epoch of VARIANT (or 'reference') after one more")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.clock == 'cpu':
        if a.threads != 1: raise SystemExit("--clock cpu needs --threads 1")
        time.perf_counter = time.process_time  # compilers' subprocesses are not counted
    flush_denormals()  # as `fit` does on CPUs: on every thread
    cache = None if a.no_cache else inductor_cache()
    from vae_book.data import get_data
    from vae_book.train import evaluate
    data = get_data(a.dataset, binarize=None, valid_size=0)
    x, test = data.train.x, data.test
    caps = cpu_caps()
    print(f"# torch {torch.__version__}, {caps['kind']}, "
          f"flags {' '.join(caps['flags'])}, {torch.get_num_threads()} threads, "
          f"inductor cache {cache}, "
          f"load {os.getloadavg()}", flush=True)

    def make(v, seed):
        if v == 'reference': return RefTrainer(a.dataset, seed)
        return FastTrainer(x, v, seed, a.drop_last)

    if a.micro:
        vs = [v for v in a.variants.split(',') if v]
        for k, v in step_costs(x, variants=vs).items():
            print(f"{k:>32}: {v:7.3f} ms/step")
        print(f"load {os.getloadavg()}"); return
    if a.profile:
        tr = make(a.profile, a.seed); tr.epoch()
        print(profile_epoch(tr)); print(f"load {os.getloadavg()}"); return

    names = (([] if a.no_ref else ['reference'])
             + [v for v in a.variants.split(',') if v])
    secs = {v: [] for v in names}; loss = {v: [] for v in names}
    comp = {v: [] for v in names}
    for r in range(a.repeats):
        trs = {v: make(v, a.seed + r) for v in names}
        for e in range(a.epochs):
            # interleaved, ~2,560 images a turn: a load change hits every trainer alike
            for v, s in interleaved_epoch(trs).items():
                secs[v].append(s)
                loss[v].append(evaluate(trs[v].model, test)['loss'])
                print(f"  repeat {r+1} epoch {e+1} {v:>15}: {s:6.2f} s  "
                      f"test {loss[v][-1]:.2f}  load {os.getloadavg()[0]:.2f}",
                      flush=True)
        for v, tr in trs.items(): comp[v].append(tr.compile_s)
    ref = statistics.median(secs['reference']) if 'reference' in secs else None
    print(f"\n| trainer | s/epoch median | min | x ref (median) | "
          f"test loss after {a.epochs} | first-step (compile) s |\n"
          f"|---|---|---|---|---|---|")
    for v in names:
        final = [loss[v][(r + 1)*a.epochs - 1] for r in range(a.repeats)]
        med = statistics.median(secs[v])
        print(f"| {v} | {med:.2f} | {min(secs[v]):.2f} | "
              f"{ref/med if ref else math.nan:.2f} | {statistics.mean(final):.2f} | "
              f"{' '.join(f'{c:.1f}' for c in comp[v])} |")
    print(f"load {os.getloadavg()}")


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
