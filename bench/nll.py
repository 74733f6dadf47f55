#!/usr/bin/env python3
"""Test NLL of the chapter-6 MLP VAE, the standard way: importance sampling with k = 5000.

Trains `mlp_vae` (784-400-20, Bernoulli decoder, Adam) on dynamically binarized MNIST or Fashion-MNIST,
then reports on the test set (binarized once, with a fixed seed):

  - the test negative ELBO (one posterior sample per image, every test image),
  - the test NLL  -L_k = -log (1/k) sum_i p(x, z_i)/q(z_i|x)  (Burda et al. 2015) with `vae_book.metrics.iw_nll`,
    and the negative ELBO on exactly the images the NLL was measured on,
  - wall times for training and for the NLL, and the NLL's throughput in decoder evaluations per second,
    with the time the whole test set would take at that rate when only a subset was evaluated.

    python bench/nll.py                                   # MNIST, 20 epochs, k=5000 on all 10k test images
    python bench/nll.py --dataset fashion --epochs 10     # Fashion-MNIST
    python bench/nll.py --dataset digits --epochs 150     # the offline digits (8k train, 1k test)
    python bench/nll.py --dataset fashion --epochs 1 --k 100 --n-test 500   # a quick smoke run

The reference number, 86.76 nats, is Burda et al.'s (2015, Table 1) one-stochastic-layer VAE on MNIST
(two hidden layers of 200 tanh units, 50 latent dimensions, 3,280 epochs). It is an MNIST number: binarized
Fashion-MNIST has far more pixels on, and its NLLs are far higher; never compare across datasets.

`--precision auto` (the default here; `iw_nll`'s own default is the exact 'fp32') runs the
decoder's last layer in bf16 where the CPU has native bf16 (AMX or AVX-512 BF16), and records
which path ran, the CPU's capabilities and, on the first `--check-images` test images, the
difference from the exact fp32 path.

Writes a JSON record (`--out`) and, with `--save`, a checkpoint (`vae_book.train.save`) that records the
metrics and the exact command.
"""
from __future__ import annotations
import argparse, json, os, platform, shlex, sys, time
from dataclasses import asdict
from pathlib import Path

import torch

from vae_book.core import get_device, set_seed
from vae_book.data import TensorLoader, get_data
from vae_book.metrics import iw_nll, nll_path
from vae_book.models.vae import mlp_vae
from vae_book.train import TrainConfig, evaluate, fit, load, save

from _common import cpu_caps

BURDA_MNIST_NLL = 86.76  # Burda et al. 2015, Table 1: VAE, 1 stochastic layer, k=1 training, MNIST


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument('--dataset', default='mnist', choices=['mnist', 'digits', 'fashion'])
    ap.add_argument('--epochs', type=int, default=20)
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--hidden-dim', type=int, default=400)
    ap.add_argument('--latent-dim', type=int, default=20)
    ap.add_argument('--n-layers', type=int, default=1, help='hidden layers in the encoder and the decoder')
    ap.add_argument('--valid-size', type=int, default=0,
                    help='training images held out (0: train on all 60k, the usual protocol for test NLL)')
    ap.add_argument('--k', type=int, default=5000, help='importance samples per test image')
    ap.add_argument('--n-test', type=int, default=None, help='evaluate the NLL on the first N test images only')
    ap.add_argument('--eval-batch', type=int, default=500, help='test images per NLL batch')
    ap.add_argument('--max-elems', type=int, default=None, help="iw_nll's cap on decoder outputs per call (default: iw_nll's)")
    ap.add_argument('--precision', default='auto', choices=['fp32', 'bf16', 'auto'],
                    help="iw_nll's precision: 'fp32' exact; 'bf16' the decoder's last "
                         "layer in bf16; 'auto' bf16 where the CPU has it natively "
                         "(AMX, AVX-512 BF16), else fp32")
    ap.add_argument('--check-images', type=int, default=200,
                    help='with a bf16 path, also score the first N test images with '
                         'the exact fp32 path on the same samples; record the difference')
    ap.add_argument('--device', default=None, help='cpu, cuda, mps (default: the best available)')
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    ap.add_argument('--out', default=None, help='JSON result (default: bench/results/nll_<dataset>.json)')
    ap.add_argument('--save', default=None, help='also save the trained model here (vae_book.train.save)')
    ap.add_argument('--load', default=None,
                    help='evaluate this checkpoint (written by --save) instead of training a model')
    ap.add_argument('--resume', default=None,
                    help="with --load: a JSON result of this checkpoint's NLL on the first m test images; "
                         "evaluate only images m..n-test and report all of them")
    ap.add_argument('--quiet', action='store_true', help='no progress bars')
    args = ap.parse_args(argv)
    for name in ('epochs', 'batch_size', 'k', 'eval_batch', 'latent_dim', 'hidden_dim'):
        if getattr(args, name) < (0 if name == 'epochs' else 1): ap.error(f'--{name.replace("_", "-")} is too small')
    if args.n_test is not None and not 1 <= args.n_test <= 10_000: ap.error('--n-test must be in [1, 10000]')
    if args.resume and not args.load: ap.error('--resume needs --load (the checkpoint it measured)')
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    command = shlex.join(['python', 'bench/nll.py', *(sys.argv[1:] if argv is None else argv)])
    if args.threads: torch.set_num_threads(args.threads)
    device = get_device(args.device)
    out = Path(args.out or Path(__file__).resolve().parent/'results'/f'nll_{args.dataset}.json')
    log = lambda *a: print(*a, flush=True)
    log(f'$ {command}\n{args.dataset}: device {device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}')

    # 'digits' have a fixed split (8,000 train / 1,000 valid / 1,000 test): --valid-size does not apply
    valid = None if args.dataset == 'digits' else args.valid_size
    data = get_data(args.dataset, batch_size=args.batch_size, valid_size=valid)  # dynamic binarization
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                      device=str(device), progress=not args.quiet)
    if args.load:  # a model trained earlier: its own config and the command that made it are recorded
        ck = load(args.load)
        if ck.metrics.get('dataset', args.dataset) != args.dataset:
            raise SystemExit(f"{args.load} was trained on {ck.metrics['dataset']}, not {args.dataset}")
        model, cfg, final, train_s = ck.model.to(device), TrainConfig(**ck.config), None, None
        log(f'loaded {args.load}, trained by: {ck.command}')
    else:
        set_seed(args.seed)
        model = mlp_vae(hidden_dim=args.hidden_dim, latent_dim=args.latent_dim, n_layers=args.n_layers)
        t0 = time.perf_counter()
        final = fit(model, data.train, cfg).last.get('train_loss')  # the test set is never seen in training
        train_s = time.perf_counter() - t0
        log(f'trained {args.epochs} epochs on {len(data.train.x)} images in {train_s:.0f}s')

    # the test set was binarized once in get_data (fixed seed); every number below is on the same bits
    test = TensorLoader(data.test.x, data.test.y, args.eval_batch)
    n = args.n_test or len(test.x)
    sub = TensorLoader(test.x[:n], test.y[:n], args.eval_batch)
    set_seed(args.seed)
    elbo = evaluate(model, test)
    elbo_sub = evaluate(model, sub) if n < len(test.x) else elbo
    m, prev = 0, None  # images already measured, by the run we resume
    if args.resume:
        prev = json.loads(Path(args.resume).read_text())
        m = prev['test_nll']['images']
        arch = json.loads(json.dumps(model.arch))  # as JSON stores it (tuples become lists)
        if (prev['dataset'], prev['model'], prev['test_nll']['k']) != (args.dataset, arch, args.k):
            raise SystemExit(f'{args.resume} measured another dataset, model or k')
        if not m < n: raise SystemExit(f'{args.resume} already covers {m} >= {n} images')
        log(f'resuming: images 0..{m} measured by `{prev["command"]}`, NLL {prev["test_nll"]["nll"]:.3f}')
    rest = TensorLoader(test.x[m:n], test.y[m:n], args.eval_batch)
    path = nll_path(model, args.precision)
    log(f'iw_nll path: {path} (precision={args.precision!r})')
    set_seed(args.seed)
    t0 = time.perf_counter()
    nll_new = iw_nll(model, rest, k=args.k, max_elems=args.max_elems,
                     progress=not args.quiet, precision=args.precision)
    if device.type == 'cuda': torch.cuda.synchronize()
    new_s = time.perf_counter() - t0
    rate = (n - m)*args.k/new_s  # decoder evaluations per second
    parts = [{'images': [m, n], 'nll': nll_new, 'seconds': round(new_s, 1),
              'path': path, 'command': command}]
    check = None
    if args.check_images and path != 'fused-fp32' and path != 'generic':
        # the same images and samples (same seed) on the exact fp32 path: bf16's error
        nc = min(args.check_images, n - m)
        few = TensorLoader(test.x[m:m + nc], test.y[m:m + nc], args.eval_batch)
        got = {}
        for p in (args.precision, 'fp32'):
            set_seed(args.seed)
            got[p] = iw_nll(model, few, k=args.k, max_elems=args.max_elems,
                            progress=False, precision=p)
        check = {'images': [m, m + nc], 'nll_fp32': got['fp32'],
                 f'nll_{path}': got[args.precision],
                 'diff': got[args.precision] - got['fp32']}
        log(f"check on {nc} images: {path} - fp32 = {check['diff']:+.4f} nats")
    if prev:  # the NLL is a mean over images: combine the two ranges by their sizes
        parts.insert(0, {'images': [0, m], 'nll': prev['test_nll']['nll'], 'seconds': prev['test_nll']['seconds'],
                         'command': prev['command']})
    nll = sum(p['nll']*(p['images'][1] - p['images'][0]) for p in parts)/n
    nll_s = sum(p['seconds'] for p in parts)
    res = {
        'dataset': args.dataset,
        'model': model.arch,
        'train': {'epochs': cfg.epochs, 'images': len(data.train.x), 'binarize': 'dynamic',
                  'seconds': None if train_s is None else round(train_s, 1), 'final_train_loss': final,
                  'loaded_from': args.load},
        'test_elbo': {'images': len(test.x), 'neg_elbo': elbo['loss'], 'recon': elbo['recon'], 'kl': elbo['kl']},
        'test_nll': {'k': args.k, 'images': n, 'nll': nll, 'path': path,
                     'precision': args.precision, 'check_vs_fp32': check,
                     'neg_elbo_same_images': elbo_sub['loss'],
                     'gap': elbo_sub['loss'] - nll, 'seconds': round(nll_s, 1), 'parts': parts,
                     'decoder_evals_per_s': round(rate), 'full_test_set_seconds_at_this_rate': round(len(test.x)*args.k/rate)},
        'reference': {'nll': BURDA_MNIST_NLL, 'dataset': 'mnist', 'source': 'Burda et al. 2015, Table 1 (VAE, 1 stochastic layer)',
                      'comparable': args.dataset == 'mnist' and n == len(test.x)},
        'config': asdict(cfg),
        'command': command,
        'env': {'device': str(device), 'torch': torch.__version__, 'threads': torch.get_num_threads(),
                'cpu_count': os.cpu_count(), 'python': platform.python_version(),
                'cpu': cpu_caps(), 'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'),
                'load_average': [round(v, 2) for v in os.getloadavg()],
                'gpu': torch.cuda.get_device_name() if device.type == 'cuda' else None},
    }
    # with --load, the training run is the one recorded earlier for this model (--resume's, or
    # the record being replaced), so the record keeps saying how long training took
    old = prev or (json.loads(out.read_text()) if out.exists() else None)
    if (args.load and old and old['train'].get('seconds') is not None
            and (old['dataset'], old['model'])
            == (res['dataset'], json.loads(json.dumps(res['model'])))):
        res['train'] = {**old['train'], 'loaded_from': args.load}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + '\n')
    if args.save:
        p = save(args.save, model, cfg, {'test_nll': nll, 'test_nll_k': args.k, 'test_nll_images': n,
                                          'test_neg_elbo': elbo['loss'], 'dataset': args.dataset}, command)
        log(f'saved the model to {p}')
    note = '' if n == len(test.x) else f' (first {n} test images; all 10k would take ~{len(test.x)*args.k/rate/60:.0f} min here)'
    log(f"{args.dataset}: test -ELBO {elbo['loss']:.2f} nats ({len(data.test.x):,} images); "
        f"test NLL (k={args.k}) {nll:.2f} nats vs -ELBO {elbo_sub['loss']:.2f} on the same {n} images{note}; "
        f"NLL took {nll_s:.0f}s, {rate:,.0f} decoder evals/s")
    if args.dataset == 'mnist':
        log(f"target: <= {BURDA_MNIST_NLL} nats on MNIST (Burda et al. 2015): "
            f"{'met' if nll <= BURDA_MNIST_NLL else 'not met'}{'' if n == len(test.x) else ' (on a subset: not comparable)'}")
    log(f'wrote {out}')
    return res


if __name__ == '__main__':
    main()
