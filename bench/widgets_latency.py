#!/usr/bin/env python3
"""Latency of one slider step in the latent explorers (decode + redraw), on the CPU by default.

    python bench/widgets_latency.py            # report; exit 1 if a p95 exceeds the 50 ms target
    python bench/widgets_latency.py --steps 200 --device cpu

A "step" is what a slider move costs in the kernel: the explorer's callback decodes the new code,
encodes the PNG(s), draws the latent plane and assigns the widgets' values. (Sending the few-KB
PNG to the browser and painting it are not included: they do not depend on the model.) Uses the
shipped pretrained Fashion-MNIST models and Fashion-MNIST test images when they are on disk
(random images otherwise). The target is <= 50 ms per step for the MLP models.
"""
import argparse, statistics, sys

import numpy as np
import torch

from vae_book.pretrained import load_pretrained
from vae_book.widgets import interpolation_explorer, traversal_explorer, class_explorer

TARGET_MS = 50.0


def images(n=2000):
    try:
        from vae_book.data import load_images
        xs, ys = load_images('fashion', train=False, download=False)
        return xs[:n].float().div(255).unsqueeze(1), ys[:n].long(), 'Fashion-MNIST test images'
    except Exception:
        g = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), 'random images'


def sweep(widget_value_setter, values, explorer):
    out = []
    for v in values:
        widget_value_setter(v)
        out.append(explorer.last_ms)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steps', type=int, default=100)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch decides)')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    x, y, what = images()
    vae2, vae20 = load_pretrained('vae_mlp2_fashion', a.device), load_pretrained('vae_mlp20_fashion', a.device)
    judge = load_pretrained('lenet_fashion', a.device)
    alphas = [float(v) for v in np.tile(np.linspace(0, 1, 21), a.steps//21 + 1)[:a.steps]]
    vals = [float(v) for v in np.tile(np.linspace(-3, 3, 25), a.steps//25 + 1)[:a.steps]]
    rows = []
    for name, m in (('vae_mlp2_fashion', vae2), ('vae_mlp20_fashion', vae20)):
        ex = interpolation_explorer(m, x, y, judge=None)
        rows.append((f'interpolation, {name}', sweep(lambda v: setattr(ex.alpha, 'value', v), alphas, ex)))
        ex = interpolation_explorer(m, x, y, judge=judge)
        rows.append((f'interpolation + LeNet judge, {name}', sweep(lambda v: setattr(ex.alpha, 'value', v), alphas, ex)))
        tr = traversal_explorer(m, x=x, y=y)
        rows.append((f'traversal (slider z[1]), {name}', sweep(lambda v: setattr(tr.sliders[1], 'value', v), vals, tr)))
    ce = class_explorer(load_pretrained('cvae_mlp2_fashion', a.device), 10, n=8)
    rows.append(('class picker, 8 images, cvae_mlp2_fashion',
                 sweep(lambda v: setattr(ce.label, 'value', int(v) % 10), range(a.steps), ce)))
    print(f'# one slider step, {a.steps} steps each, device={a.device}, threads={torch.get_num_threads()}, data: {what}')
    print(f"{'explorer':<62} {'median':>8} {'p95':>8} {'max':>8}  (ms)")
    bad = []
    for label, t in rows:
        t = t[1:]  # the first step may include one-off warm-up
        p95 = float(np.percentile(t, 95))
        print(f'{label:<62} {statistics.median(t):8.2f} {p95:8.2f} {max(t):8.2f}')
        if p95 > TARGET_MS: bad.append(label)
    print(f'target: p95 <= {TARGET_MS:.0f} ms per step: ' + ('met' if not bad else f'MISSED by {bad}'))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
