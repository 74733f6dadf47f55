#!/usr/bin/env python3
"""Denormal floats and `fit` on a CPU: the flag on the main thread only, or on every thread.

Two fresh processes train the chapter-6 VAE (784-400-20, Fashion-MNIST, all 60,000 training
images) with `vae_book.fit` for `--epochs` epochs, the same seed: `main-thread`, where fit
sets the flush-to-zero flag with `torch.set_flush_denormal(True)` (what `fit` did before:
it reaches only the calling thread, not the OpenMP workers, which already exist by then),
and `all-threads`, `fit` as it is (`vae_book.core.flush_denormals`). Prints each epoch's
seconds. `--count` also trains a plain fused-Adam loop and counts Adam's first moments that
are denormal after a given number of steps, per parameter.

    python bench/denormals.py --epochs 5 --batch-size 256 --lr 3e-3
    python bench/denormals.py --epochs 4 --batch-size 128 --lr 1e-3 --count
"""
import argparse, json, os, platform, subprocess, sys
from pathlib import Path
import torch


def child(a):
    import vae_book.train as train
    from vae_book.core import set_seed
    from vae_book.data import get_data
    from vae_book.models.vae import mlp_vae
    torch.set_num_threads(a.threads)
    torch.ones(1 << 20).sum()           # the OpenMP pool exists before fit, as in any session
    if a.child == 'main-thread':
        train.flush_denormals = lambda on=True: torch.set_flush_denormal(on)
    data = get_data('fashion', batch_size=a.batch_size, binarize=None, valid_size=0)
    set_seed(a.seed); model = mlp_vae()
    hist = train.fit(model, data.train, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                     seed=a.seed, progress=False)
    print(json.dumps({'epoch_seconds': [round(r['time'], 3) for r in hist],
                      'train_loss': hist[-1]['train_loss']}))


def count(a):
    "Adam's first moments that are denormal, per parameter, after some steps"
    from vae_book.core import set_seed
    from vae_book.data import Batch, get_data
    from vae_book.models.vae import mlp_vae
    torch.set_num_threads(a.threads)
    x = get_data('fashion', binarize=None, valid_size=0).train.x
    set_seed(a.seed); m = mlp_vae()
    opt = torch.optim.Adam(m.parameters(), lr=a.lr, fused=True)
    tiny, g, step, out = torch.finfo(torch.float32).tiny, torch.Generator().manual_seed(a.seed), 0, {}
    marks = (200, 500, 700, 800, 1000)
    while step < marks[-1]:
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), a.batch_size):
            b = x[perm[i:i + a.batch_size]]
            opt.zero_grad(); m.loss(Batch(b, b)).loss.backward(); opt.step(); step += 1
            if step in marks:
                out[step] = {n: int(((opt.state[p]['exp_avg'].abs() < tiny)
                                     & (opt.state[p]['exp_avg'] != 0)).sum())
                             for n, p in m.named_parameters()}
                out[step] = {k: v for k, v in out[step].items() if v}
            if step >= marks[-1]: break
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--count', action='store_true')
    p.add_argument('--out', default=None,
                   help='JSON record (default: bench/results/denormals_b<batch size>.json)')
    p.add_argument('--child', default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child: return child(a)
    print(f"# Fashion-MNIST, 784-400-20 VAE, batch {a.batch_size}, lr {a.lr}, {a.threads} threads, "
          f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    rec = {'command': 'python bench/denormals.py ' + ' '.join(sys.argv[1:]),
           'dataset': 'fashion', 'model': 'mlp_vae() 784-400-20', 'batch_size': a.batch_size,
           'lr': a.lr, 'epochs': a.epochs, 'threads': a.threads, 'torch': torch.__version__,
           'python': platform.python_version(),
           'capability': torch.backends.cpu.get_cpu_capability(), 'runs': {}}
    for mode in ('main-thread', 'all-threads'):
        args = [sys.executable, __file__, '--child', mode, *sys.argv[1:]]
        r = subprocess.run([x for x in args if x != '--count'], capture_output=True, text=True)
        if r.returncode: raise SystemExit(r.stderr)
        res = rec['runs'][mode] = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{mode:>12}: s/epoch {res['epoch_seconds']}, "
              f"final train loss {res['train_loss']:.2f}", flush=True)
    if a.count:
        rec['denormal_first_moments'] = count(a)
        for step, c in rec['denormal_first_moments'].items():
            print(f"after {step} steps, denormal Adam first moments: {c or 'none'}")
    rec['load_average_after'] = [round(v, 2) for v in os.getloadavg()]
    out = Path(a.out or Path(__file__).resolve().parent/'results'/f'denormals_b{a.batch_size}.json')
    out.write_text(json.dumps(rec, indent=1) + '\n')
    print(f"wrote {out}")


if __name__ == '__main__':
    main()
