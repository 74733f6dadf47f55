#!/usr/bin/env python3
"""The IW-NLL before and after issue 16's fused path, on one machine, in alternating runs.

`iw_nll` as it was at `--old-commit` (default ef2aa55, the last commit before the fused
path; its code is taken with `git archive`, so this needs the repository's history) and as
it is now (`precision='fp32'` and, where the CPU multiplies bf16 natively, 'bf16'), each in
a fresh process, alternating old, new, old, new, ... so a change of load hits all alike.
Same model weights, the same binarized test images (those of `bench/nll.py`), the same seed
and so the same samples; k = 5000 by default. Writes a record with every run's seconds and
NLL, the medians and the speed-ups.

    python bench/nll_vs_old.py --load runs/vae.pt --n-test 500 --rounds 3
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def child(a):
    "One timed iw_nll in this process: prints a JSON line"
    import vae_book
    from vae_book.core import set_seed
    from vae_book.data import TensorLoader
    from vae_book.metrics import iw_nll
    from vae_book.models.vae import mlp_vae
    torch.set_num_threads(a.threads)
    sd = torch.load(Path(a.work)/'weights.pt')
    x, y = torch.load(Path(a.work)/'test.pt')
    model = mlp_vae(**json.loads((Path(a.work)/'arch.json').read_text())).eval()
    model.load_state_dict(sd)
    test = TensorLoader(x, y, 500)
    kw = {} if a.child == 'old' else {'precision': a.child}
    set_seed(a.seed); t = time.perf_counter()
    nll = iw_nll(model, test, k=a.k, progress=False, **kw)
    print(json.dumps({'nll': nll, 'seconds': time.perf_counter() - t,
                      'package': str(Path(vae_book.__file__).parent)}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--load', help='a checkpoint of mlp_vae (vae_book.train.save)')
    p.add_argument('--dataset', default='fashion')
    p.add_argument('--n-test', type=int, default=500)
    p.add_argument('--k', type=int, default=5000)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--old-commit', default='ef2aa55')
    p.add_argument('--out', default=str(ROOT/'bench'/'results'/'speedup_nll_vs_old.json'))
    p.add_argument('--child', default=None, help=argparse.SUPPRESS)
    p.add_argument('--work', default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child: return child(a)
    if not a.load: p.error("--load is required: a checkpoint of mlp_vae")

    sys.path.insert(0, str(ROOT/'bench'))
    from _common import cpu_caps
    from vae_book.checkpoint import load
    from vae_book.data import get_data
    from vae_book.metrics import bf16_native
    ck = load(a.load)
    data = get_data(a.dataset, batch_size=128, valid_size=0)  # as bench/nll.py: test binarized once
    variants = ['old', 'fp32'] + (['bf16'] if bf16_native() else [])
    runs = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        torch.save(ck.model.state_dict(), w/'weights.pt')
        torch.save((data.test.x[:a.n_test].clone(), data.test.y[:a.n_test].clone()), w/'test.pt')
        arch = dict(ck.model.arch['kwargs'])  # mlp_vae's arguments
        (w/'arch.json').write_text(json.dumps(arch))
        (w/'old').mkdir()
        tar = subprocess.run(['git', '-C', str(ROOT), 'archive', a.old_commit, 'vae_book'],
                             check=True, capture_output=True).stdout
        subprocess.run(['tar', '-x', '-C', str(w/'old')], input=tar, check=True)
        for r in range(a.rounds):
            for v in variants:
                env = {**os.environ, 'PYTHONPATH': str(w/'old' if v == 'old' else ROOT)}
                out = subprocess.run([sys.executable, __file__, '--child', v, '--work', work,
                                      '--threads', str(a.threads), '--k', str(a.k),
                                      '--seed', str(a.seed)],
                                     env=env, capture_output=True, text=True)
                if out.returncode: raise SystemExit(f"the {v!r} run failed:\n{out.stderr}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                assert (v == 'old') == ('/old/' in res['package'] + '/'), res['package']
                runs[v].append(res)
                print(f"round {r+1} {v:>4}: NLL {res['nll']:.5f} in {res['seconds']:.2f} s",
                      flush=True)
    med = {v: statistics.median(x['seconds'] for x in rs) for v, rs in runs.items()}
    rec = {
        'what': f"iw_nll at {a.old_commit} vs now, k={a.k}, first {a.n_test} test images of "
                f"binarized {a.dataset}, alternating fresh processes",
        'model': ck.model.arch, 'checkpoint_command': ck.command,
        'runs': {v: [{'nll': x['nll'], 'seconds': round(x['seconds'], 2)} for x in rs]
                 for v, rs in runs.items()},
        'median_seconds': {v: round(s, 2) for v, s in med.items()},
        'speedup_vs_old': {v: round(med['old']/s, 2) for v, s in med.items() if v != 'old'},
        'nll_minus_old': {v: runs[v][0]['nll'] - runs['old'][0]['nll'] for v in runs if v != 'old'},
        'command': 'python bench/nll_vs_old.py ' + ' '.join(sys.argv[1:]),
        'env': {'threads': a.threads, 'torch': torch.__version__,
                'python': platform.python_version(), 'cpu': cpu_caps(),
                'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'),
                'load_average_after': [round(v, 2) for v in os.getloadavg()]},
    }
    Path(a.out).write_text(json.dumps(rec, indent=1) + '\n')
    for v, s in med.items():
        print(f"{v:>4}: median {s:.2f} s" + ('' if v == 'old' else
              f", {med['old']/s:.2f}x the old code, NLL {rec['nll_minus_old'][v]:+.5f} nats"))
    print(f"wrote {a.out}")


if __name__ == '__main__':
    main()
