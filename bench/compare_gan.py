r"""VAE vs GAN vs VAE-GAN on the same images and budget (chapter 9's full-budget table).

One command trains every chosen contender of `vae_book.experiments.gan.contenders` with `fit` (same seed,
epochs, batch size, latent size and decoder layout), watches each with the LeNet judge during training,
and scores it: FD-LeNet, improved precision and recall (Kynkäänniemi et al. 2019) and class coverage of
`--n-samples` samples on the judge's features, sharpness, the checkerboard score, and the test NLL
(importance-sampled, `--k` samples on `--n-nll` binarized test images) where the model has one. With
`--seeds N` it repeats the whole comparison for seeds `--seed`, `--seed`+1, ... and records mean ± sd.
Results go to `bench/results/gan_<dataset>.json` (the chapter reads that file): per seed the per-step
losses and the monitor's curves; and 64 samples per model of the first seed's models, as uint8 images, to
`bench/results/gan_<dataset>_samples.pt` (the chapter's showcase grids). The table is printed as markdown,
and one line per trained model while it runs.

    OMP_NUM_THREADS=1 python bench/compare_gan.py --dataset digits --seeds 3 --epochs 4 --n-samples 1000 \
        --n-nll 300 --k 64 --monitor-n 300 --monitor-every 100 --models VAE GAN VAE-GAN --threads 1
    python bench/compare_gan.py --dataset fashion --epochs 10 --threads 1          # the Fashion record
    python bench/compare_gan.py --epochs 1 --n-train 2000 --out /tmp/smoke.json     # a smoke test
"""
import argparse, datetime, json, os, shlex, sys, time
from pathlib import Path

import torch

from vae_book.core import get_device
from vae_book.experiments.conditional import get_judge
from vae_book.experiments.gan import (contenders, run_comparison, comparison_table, seed_summary,
                                      summary_table)

from _common import machine, rounded

ROOT = Path(__file__).resolve().parent
N_SHOW = 64  # samples per model in the showcase file


def showcase(trained: dict, real: torch.Tensor, seed: int) -> dict:
    "`N_SHOW` samples per model (and real test images) as uint8 (N, 1, 28, 28) tensors"
    idx = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[:N_SHOW]
    out = {'real (test)': (real[idx]*255).round().to(torch.uint8)}  # a random subset of the test split
    for m, model in trained.items():
        torch.manual_seed(seed + 1)
        out[m] = (model.sample(N_SHOW).float().cpu()*255).round().to(torch.uint8)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    names = list(contenders())
    p.add_argument('--dataset', default='fashion', choices=['digits', 'fashion', 'mnist'])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--n-train', type=int, default=None, help='training images (default: all)')
    p.add_argument('--models', nargs='+', default=names, choices=names, metavar='MODEL',
                   help=f'any of {names} (default: all)')
    p.add_argument('--latent-dim', type=int, default=32)
    p.add_argument('--channels', type=int, default=16, help='width of every conv net (c in the chapter)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--seed', type=int, default=42, help='the first seed')
    p.add_argument('--seeds', type=int, default=1, help='how many seeds: --seed, --seed+1, ...')
    p.add_argument('--n-samples', type=int, default=2000, help='samples scored per model')
    p.add_argument('--k', type=int, default=1000, help='importance samples for the NLL')
    p.add_argument('--n-nll', type=int, default=1000, help='binarized test images for the NLL')
    p.add_argument('--monitor-every', type=int, default=200, help='steps between checks during training')
    p.add_argument('--monitor-n', type=int, default=1000, help='samples per check')
    p.add_argument('--device', default=None, help="e.g. 'cpu' or 'cuda' (default: the best available)")
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    p.add_argument('--progress', action='store_true', help='progress bars even when stderr is not a terminal')
    p.add_argument('--out', default=None, help='JSON file (default: bench/results/gan_<dataset>.json)')
    p.add_argument('--samples-out', default=None,
                   help='showcase samples (default: next to --out, <stem>_samples.pt)')
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    device = get_device(a.device)
    out = Path(a.out) if a.out else ROOT/'results'/f'gan_{a.dataset}.json'
    samples_out = Path(a.samples_out) if a.samples_out else out.with_name(out.stem + '_samples.pt')
    judge = get_judge(a.dataset)  # the shipped judge (lenet_<dataset>) where there is one

    t0, runs = time.perf_counter(), []
    seeds = [a.seed + i for i in range(a.seeds)]
    log = lambda s: print(f'[{time.perf_counter() - t0:6.0f} s] {s}', flush=True)
    for i, seed in enumerate(seeds):
        log(f'seed {seed} ({i + 1} of {len(seeds)}): {", ".join(a.models)}')
        res, trained = run_comparison(
            a.dataset, epochs=a.epochs, n_train=a.n_train, batch_size=a.batch_size, seed=seed,
            latent_dim=a.latent_dim, channels=a.channels, models=a.models, n_samples=a.n_samples,
            k=a.k, n_nll=a.n_nll, monitor_n=a.monitor_n, monitor_every=a.monitor_every, judge=judge,
            device=str(device), progress=a.progress or sys.stderr.isatty(), log=log)
        if i == 0:
            from vae_book.data import get_data
            real = get_data(a.dataset, binarize=None).test.x
            samples = showcase(trained, real, seed)
        runs.append(res)
    meta = {'config': vars(a), 'machine': machine(device), 'cpu_cores': os.cpu_count(),
            'torch': torch.__version__,
            'date': datetime.date.today().isoformat(), 'wall_s': round(time.perf_counter() - t0, 1),
            'command': 'python bench/compare_gan.py ' + ' '.join(map(shlex.quote, argv or sys.argv[1:]))}
    if len(runs) == 1: record = {**runs[0], **meta}  # the single-seed layout of gan_fashion.json
    else:
        keep = ('dataset', 'epochs', 'n_train', 'batch_size', 'latent_dim', 'channels', 'n_samples',
                'k', 'n_nll')
        for r in runs: r.pop('samples')  # the showcase file has the first seed's samples
        record = {**{k: runs[0][k] for k in keep}, 'seeds': seeds,
                  'summary': seed_summary(runs), 'runs': runs, **meta}
    record['samples_file'] = samples_out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rounded(record), indent=1) + '\n')
    torch.save({'dataset': a.dataset, 'epochs': a.epochs, 'seed': seeds[0], 'n_train': runs[0]['n_train'],
                'command': meta['command'], 'samples': samples}, samples_out)
    print(f"\n{a.dataset}, {runs[0]['n_train']:,} training images, {a.epochs} epochs, batch size "
          f"{a.batch_size}, seeds {seeds}; {meta['machine']}; {meta['wall_s']:.0f} s\n")
    print(summary_table(record['summary']) if len(runs) > 1 else comparison_table(runs[0]['rows']))
    print(f"\nwritten to {out} and {samples_out}")


if __name__ == '__main__':
    main()
