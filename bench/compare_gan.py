"""VAE vs GAN vs VAE-GAN on the same images and budget (chapter 9's full-budget table).

One command trains every contender of `vae_book.models.gan.contenders` with `fit_gan` (same seed, epochs,
batch size, latent size and decoder layout), watches each with the LeNet judge during training, and scores
it: FD-LeNet and class coverage of `--n-samples` samples, sharpness, and the test NLL (importance-sampled,
`--k` samples on `--n-nll` binarized test images) where the model has one. Results, including per-step
losses, the monitor's curves and small PNG sample grids, go to `bench/results/gan_<dataset>.json` (the
chapter reads that file), and the table is printed as markdown.

    python bench/compare_gan.py --dataset fashion --epochs 10
    python bench/compare_gan.py --dataset mnist --epochs 20 --channels 32
    python bench/compare_gan.py --epochs 1 --n-train 2000 --out /tmp/smoke.json   # a smoke test
"""
import argparse, datetime, json, shlex, sys, time
from pathlib import Path

import torch

from vae_book.core import get_device
from vae_book.models.gan import contenders, run_comparison, comparison_table

from _common import machine, rounded

ROOT = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    names = list(contenders())
    p.add_argument('--dataset', default='fashion', choices=['fashion', 'mnist'])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--n-train', type=int, default=None, help='training images (default: all 50,000)')
    p.add_argument('--models', nargs='+', default=names, choices=names, metavar='MODEL',
                   help=f'any of {names} (default: all)')
    p.add_argument('--latent-dim', type=int, default=32)
    p.add_argument('--channels', type=int, default=16, help='width of every conv net (c in the chapter)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--n-samples', type=int, default=2000, help='samples scored per model')
    p.add_argument('--k', type=int, default=1000, help='importance samples for the NLL')
    p.add_argument('--n-nll', type=int, default=1000, help='binarized test images for the NLL')
    p.add_argument('--monitor-every', type=int, default=200, help='steps between checks during training')
    p.add_argument('--monitor-n', type=int, default=1000, help='samples per check')
    p.add_argument('--device', default=None, help="e.g. 'cpu' or 'cuda' (default: the best available)")
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    p.add_argument('--progress', action='store_true', help='progress bars even when stderr is not a terminal')
    p.add_argument('--out', default=None, help='JSON file (default: bench/results/gan_<dataset>.json)')
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    device = get_device(a.device)
    out = Path(a.out) if a.out else ROOT/'results'/f'gan_{a.dataset}.json'

    t0 = time.perf_counter()
    res, _ = run_comparison(a.dataset, epochs=a.epochs, n_train=a.n_train, batch_size=a.batch_size, seed=a.seed,
                            latent_dim=a.latent_dim, channels=a.channels, models=a.models,
                            n_samples=a.n_samples, k=a.k, n_nll=a.n_nll, monitor_n=a.monitor_n,
                            monitor_every=a.monitor_every, device=str(device), progress=a.progress or sys.stderr.isatty())
    res.update({'config': vars(a), 'machine': machine(device), 'torch': torch.__version__,
                'date': datetime.date.today().isoformat(), 'wall_s': round(time.perf_counter() - t0, 1),
                'command': 'python bench/compare_gan.py ' + ' '.join(map(shlex.quote, argv or sys.argv[1:]))})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rounded(res), indent=1) + '\n')
    print(f"{a.dataset}, {res['n_train']:,} training images, {a.epochs} epochs, batch size {a.batch_size}; "
          f"{res['machine']}\n")
    print(comparison_table(res['rows']))
    print(f"\nwritten to {out}")


if __name__ == '__main__':
    main()
