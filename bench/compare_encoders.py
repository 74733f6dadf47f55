"""MLP vs convolutional vs transformer VAE at similar parameter counts (chapter 8's table).

One command writes the whole table: every model is trained with the same `TrainConfig` and seed, then scored
on the test set (−ELBO, importance-sampled NLL with `--k` samples on `--n-test` images, FD-LeNet of
`--n-samples` samples against real test images, training time). With `--seeds N` every model is trained
with seeds `--seed`, `--seed`+1, ... and the table gives mean ± sd over them (one progress line per run).
Results go to `bench/results/encoders_<dataset>.json` (the chapter reads that file) and are printed as a
markdown table.

    python bench/compare_encoders.py --dataset fashion --epochs 10
    python bench/compare_encoders.py --dataset digits --epochs 4 --seeds 3 --k 50 --n-test 0 --threads 1
    python bench/compare_encoders.py --dataset mnist --epochs 10 --models conv vit --k 1000
    python bench/compare_encoders.py --epochs 1 --n-train 2000 --out /tmp/smoke.json   # a smoke test
"""
import argparse, dataclasses, datetime, json, shlex, sys, time
from pathlib import Path

import torch

from vae_book.core import get_device, set_seed
from vae_book.data import get_data, load_images
from vae_book.metrics import fd_lenet
from vae_book.experiments.conditional import get_judge
from vae_book.experiments.encoders import (comparison_models, compare_vaes, results_table,
                                           summarize_runs)
from vae_book.train import TrainConfig

from _common import machine, rounded

ROOT = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='fashion', choices=['fashion', 'mnist', 'digits'])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--n-train', type=int, default=None, help='training images (default: all; 50,000 for MNIST/Fashion, 8,000 digits)')
    p.add_argument('--models', nargs='+', default=['mlp', 'conv', 'vit'], choices=['mlp', 'conv', 'vit'])
    p.add_argument('--latent-dim', type=int, default=20)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--seed', type=int, default=42, help='the first seed')
    p.add_argument('--seeds', type=int, default=1, help='runs per model: seeds seed, seed+1, ...')
    p.add_argument('--k', type=int, default=500, help='importance samples for the IW-NLL')
    p.add_argument('--n-test', type=int, default=1000, help='test images scored (0: all of the test split)')
    p.add_argument('--n-samples', type=int, default=1000, help='samples for FD-LeNet (0: skip it)')
    p.add_argument('--device', default=None, help="e.g. 'cpu' or 'cuda' (default: the best available)")
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    p.add_argument('--out', default=None, help='JSON file (default: bench/results/encoders_<dataset>.json)')
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    device = get_device(a.device)
    out = Path(a.out) if a.out else ROOT/'results'/f'encoders_{a.dataset}.json'

    data = get_data(a.dataset, batch_size=a.batch_size, n_train=a.n_train)
    cfg = TrainConfig(epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, seed=a.seed, device=str(device),
                      progress=sys.stderr.isatty())
    models = {k: v for k, v in comparison_models(a.latent_dim).items() if k in a.models}
    seeds = [a.seed + i for i in range(a.seeds)]
    t0, runs, trained = time.perf_counter(), [], []
    for i, seed in enumerate(seeds):
        for j, (name, make) in enumerate(models.items()):
            t = time.perf_counter()
            rows, models_ = compare_vaes({name: make}, data, dataclasses.replace(cfg, seed=seed), k=a.k,
                                         n_test=a.n_test or None, n_show=10 if i == 0 else 0)
            runs.append(rows[0]); trained.append(models_[name])
            print(f"[{i*len(models) + j + 1}/{len(seeds)*len(models)}] {name} seed {seed}: "
                  f"-ELBO {rows[0]['neg_elbo']:.2f}, IW-NLL {rows[0]['iw_nll']:.2f}; "
                  f"{time.perf_counter() - t:.0f} s (total {time.perf_counter() - t0:.0f} s)", flush=True)
    if a.n_samples:  # FD-LeNet last, under one judge (loaded once every model is trained)
        judge = get_judge(a.dataset).to(device)
        real = load_images(a.dataset, train=False)[0].float().div(255).unsqueeze(1)  # grey-level test images
        for row, model in zip(runs, trained):
            set_seed(row['seed'])
            row['fd_lenet'] = fd_lenet(judge, model.sample(a.n_samples).float().cpu(), real[:a.n_samples])
            print(f"{row['model']} seed {row['seed']}: FD-LeNet {row['fd_lenet']:.2f}", flush=True)
    rows = summarize_runs(runs) if len(seeds) > 1 else runs
    result = {'dataset': a.dataset, 'epochs': a.epochs, 'k': a.k, 'n_test': rows[0]['n_test'],
              'n_samples': a.n_samples, 'seeds': seeds, 'config': vars(a), 'machine': machine(device),
              'torch': torch.__version__, 'date': datetime.date.today().isoformat(),
              'wall_s': round(time.perf_counter() - t0, 1),
              'command': 'python bench/compare_encoders.py ' + ' '.join(map(shlex.quote, argv or sys.argv[1:])),
              'rows': rounded(rows) if len(seeds) > 1 else rows,
              **({'runs': rounded([{k: v for k, v in r.items() if k != 'samples'} for r in runs])}
                 if len(seeds) > 1 else {})}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + '\n')
    print(f"\n{a.dataset}, {rows[0]['n_train']:,} training images, {a.epochs} epochs, IW-NLL k={a.k} on "
          f"{rows[0]['n_test']:,} test images, seeds {seeds}; {result['machine']}\n")
    print(results_table(rows))
    print(f"\nwritten to {out}")


if __name__ == '__main__':
    main()
