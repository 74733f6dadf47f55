#!/usr/bin/env python3
"""Retrain the shipped pretrained models from their recipes and check the recorded metrics.

    python bench/reproduce_pretrained.py                      # retrain all, compare with the shipped files
    python bench/reproduce_pretrained.py vae_mlp2_fashion     # just one
    python bench/reproduce_pretrained.py --write lenet_fashion  # retrain and overwrite vae_book/weights/
    python bench/reproduce_pretrained.py --epochs 1           # a quick smoke run (the check will fail)

Each recipe in `vae_book.pretrained.RECIPES` names the metric a retrain must reach again and its tolerance
(`tol`): |retrained - recorded| <= tol. Retrains are not bit-for-bit identical (thread scheduling, BLAS and
the device change the floating-point path): on the CPU machine that built the files, a retrain of
vae_mlp2_fashion gave test_loss 266.990 against the recorded 266.998 nats (Fashion-MNIST). Each VAE
recipe takes ~4 minutes on a 2-core CPU, the LeNet one ~9. Exits 1 if any check fails. All recipes train on
Fashion-MNIST.
"""
import argparse, sys, time

from vae_book.pretrained import RECIPES, reproduce, write_pretrained, weights_path, load_pretrained


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('names', nargs='*', help=f'recipes to run (default: all of {list(RECIPES)})')
    ap.add_argument('--write', action='store_true', help='overwrite the shipped weights with the retrain')
    ap.add_argument('--epochs', type=int, default=None, help="override the recipe's epochs")
    ap.add_argument('--device', default=None, help='cpu, cuda, mps (default: the best available)')
    args = ap.parse_args(argv)
    names = args.names or list(RECIPES)
    bad = [n for n in names if n not in RECIPES]
    if bad: ap.error(f'unknown recipe(s) {bad}; choose from {list(RECIPES)}')
    failed = []
    for name in names:
        r = RECIPES[name]; t0 = time.time()
        print(f'== {name}: {r.description} [{r.dataset}, {r.cfg.epochs if args.epochs is None else args.epochs} epochs]',
              flush=True)
        model, metrics = reproduce(name, epochs=args.epochs, device=args.device, progress=True)
        dt = time.time() - t0
        print(f'   retrained in {dt:.0f}s: ' + ', '.join(f'{k}={v:.4f}' for k, v in metrics.items()), flush=True)
        if args.write:
            p = write_pretrained(name, model, metrics)
            print(f'   wrote {p} ({p.stat().st_size/1024:.0f} KiB)', flush=True)
            continue
        if not weights_path(name).exists():
            print(f'   no shipped file to compare with ({weights_path(name)}); use --write'); failed.append(name); continue
        want = load_pretrained(name).card['metrics'][r.metric]; got = metrics[r.metric]
        ok = abs(got - want) <= r.tol
        print(f"   {r.metric}: recorded {want:.4f}, retrained {got:.4f}, |diff| {abs(got-want):.4f} "
              f"{'<=' if ok else '>'} tol {r.tol}: {'OK' if ok else 'FAIL'}", flush=True)
        if not ok: failed.append(name)
    if failed: print(f'FAILED: {failed}'); return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
