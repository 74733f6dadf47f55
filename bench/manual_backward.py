#!/usr/bin/env python3
"""Is autograd's bookkeeping what keeps a CPU step of the MLP VAE above its GEMMs? (issue 16)

The same step five ways on one batch of 256 Fashion-MNIST images, best of 15 x 20 steps,
interleaved so that a load change hits all alike: the five big matrix products alone
(`gemm`, the floor), `model.loss(...).backward()` + fused Adam (`autograd`, what `fit`
runs), and the same loss with its gradients written out by hand, with in-place element-wise
passes and no graph (`by hand`), and that hand-written pass wrapped as one
`torch.autograd.Function` behind `loss.backward()` (`Function`: what the library could ship without
leaving `fit`'s protocol), either as a forward and a backward (`Function`) or with every gradient
computed in the forward and handed over by the backward (`Function, grads in forward`). The
gradients are checked against autograd's first.

`--in-fit` then times whole `fit` epochs (batch 256, lr 3e-3, all 60,000 training images) with
`VAE.loss` as it is and with `VAE.loss` returning the grads-in-forward Function, alternating,
`--epochs` x `--repeats`: what the hot-loop gain is worth inside the real loop.

    python bench/manual_backward.py                    # this CPU, 2 threads
    python bench/manual_backward.py --in-fit           # and the fit epochs
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        python bench/manual_backward.py                # as an AVX2-only CPU would run it

Measured in bench/README.md ("Per kind of CPU").
"""
import argparse, json, os, platform, statistics, sys
from pathlib import Path
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
from vae_book.core import flush_denormals
from vae_book.data import Batch, get_data
from vae_book.losses.elbo import ELBO
from vae_book.models.vae import VAE, mlp_vae
from vae_book.train import fit
from fast_step import _best_ms as best_ms, gemm_floor  # bench/ is on the path when run
from _common import cpu_caps


def by_hand(P:dict, x:torch.Tensor) -> torch.Tensor:
    "Negative ELBO of the 784-400-20 VAE on flat `x`; sets every parameter's .grad"
    W1, b1 = P['encoder.body.0.weight'], P['encoder.body.0.bias']
    Wm, bm = P['encoder.to_mu.weight'], P['encoder.to_mu.bias']
    Wl, bl = P['encoder.to_logvar.weight'], P['encoder.to_logvar.bias']
    W3, b3 = P['decoder.body.0.weight'], P['decoder.body.0.bias']
    W4, b4 = P['decoder.to_logits.weight'], P['decoder.to_logits.bias']
    with torch.no_grad():
        n = len(x)
        h1 = torch.addmm(b1, x, W1.t()).relu_()
        mu, lv = torch.addmm(bm, h1, Wm.t()), torch.addmm(bl, h1, Wl.t())
        std = (0.5*lv).exp_(); eps = torch.randn_like(std)  # as reparameterize draws
        z = torch.addcmul(mu, std, eps)
        h3 = torch.addmm(b3, z, W3.t()).relu_()
        l = torch.addmm(b4, h3, W4.t())                      # logits
        var = lv.exp()
        loss = (F.softplus(l).sum() - torch.dot(x.view(-1), l.view(-1))
                + 0.5*(mu.square() + var - 1 - lv).sum())/n
        g = torch.sigmoid(l, out=l).sub_(x).mul_(1/n)        # dL/dlogits
        W4.grad = g.t() @ h3; b4.grad = g.sum(0)
        gh = torch.ops.aten.threshold_backward(g @ W4, h3, 0)
        W3.grad = gh.t() @ z; b3.grad = gh.sum(0)
        gz = gh @ W3
        gmu = gz + mu/n
        glv = torch.addcmul(0.5*(var - 1)/n, gz, 0.5*std*eps)
        Wm.grad = gmu.t() @ h1; bm.grad = gmu.sum(0)
        Wl.grad = glv.t() @ h1; bl.grad = glv.sum(0)
        gh1 = torch.ops.aten.threshold_backward(torch.addmm(gmu @ Wm, glv, Wl), h1, 0)
        W1.grad = gh1.t() @ x; b1.grad = gh1.sum(0)
    return loss


class HandELBO(torch.autograd.Function):
    "Negative ELBO of a Bernoulli MLP VAE, with its gradients written out: no graph"
    @staticmethod
    def forward(ctx, x:Tensor, eps:Tensor, beta, n_enc:int, *ps:Tensor):
        # ps: weight and bias of each Linear in order: the encoder's hidden layers,
        # to_mu, to_logvar, the decoder's hidden layers, to_logits
        Ws, bs, n = ps[0::2], ps[1::2], len(x)
        hs = [x]                                      # encoder: x, then each hidden h
        for W, b in zip(Ws[:n_enc], bs[:n_enc]):
            hs.append(torch.addmm(b, hs[-1], W.t()).relu_())
        mu = torch.addmm(bs[n_enc], hs[-1], Ws[n_enc].t())
        lv = torch.addmm(bs[n_enc+1], hs[-1], Ws[n_enc+1].t())
        std = (0.5*lv).exp_()
        ds = [torch.addcmul(mu, std, eps)]            # decoder: z, then each hidden h
        for W, b in zip(Ws[n_enc+2:-1], bs[n_enc+2:-1]):
            ds.append(torch.addmm(b, ds[-1], W.t()).relu_())
        l = torch.addmm(bs[-1], ds[-1], Ws[-1].t())   # logits, (B, D)
        recon = (F.softplus(l).sum() - torch.dot(x.reshape(-1), l.view(-1)))/n
        var = lv.exp()
        kl = 0.5*(mu.square() + var - 1 - lv).sum()/n
        ctx.save_for_backward(*ps)
        ctx.parts, ctx.n_enc = (x, eps, beta, hs, ds, mu, std, var, l), n_enc
        ctx.mark_non_differentiable(recon, kl)
        return recon + beta*kl, recon, kl

    @staticmethod
    @once_differentiable
    def backward(ctx, go:Tensor, *_):
        if ctx.parts is None:
            raise RuntimeError("the fused ELBO's backward ran twice (retain_graph=True?): "
                               "set `model.fused = False` to keep autograd's graph")
        x, eps, beta, hs, ds, mu, std, var, l = ctx.parts; ctx.parts = None
        ps, n_enc, need = ctx.saved_tensors, ctx.n_enc, ctx.needs_input_grad[4:]
        Ws, grads = ps[0::2], [None]*len(ps)
        def linear_grads(i:int, g:Tensor, inp:Tensor):  # weight and bias of Linear i
            if need[2*i]: grads[2*i] = g.t() @ inp
            if need[2*i+1]: grads[2*i+1] = g.sum(0)
        # dL/dlogits = (sigmoid(l) - x)/B, written over the logits (saved for this only)
        g = torch.sigmoid(l, out=l).sub_(x).mul_(go/len(x))
        for i in range(len(Ws) - 1, n_enc + 1, -1):   # the decoder, last layer first
            inp = ds[i - n_enc - 2]
            linear_grads(i, g, inp)
            g = g @ Ws[i]
            if i > n_enc + 2: g = torch.ops.aten.threshold_backward(g, inp, 0)
        c = go*beta/len(x)                            # the KL term, closed form
        gmu = g + c*mu                                # z = mu + std*eps
        glv = torch.addcmul(c*0.5*(var - 1), g, 0.5*std*eps)
        h = hs[-1]
        linear_grads(n_enc, gmu, h); linear_grads(n_enc + 1, glv, h)
        if n_enc:
            g = torch.addmm(gmu @ Ws[n_enc], glv, Ws[n_enc + 1])
            for i in range(n_enc - 1, -1, -1):        # the encoder, last layer first
                g = torch.ops.aten.threshold_backward(g, hs[i+1], 0)
                linear_grads(i, g, hs[i])
                if i: g = g @ Ws[i]
        return None, None, None, None, *grads


def function_loss(m, x:torch.Tensor) -> torch.Tensor:
    "The same loss as one `HandELBO` autograd node: what a library version of `by hand` would be"
    e, d = m.encoder, m.decoder
    lins = [*e.body[0::2], e.to_mu, e.to_logvar, *d.body[0::2], d.to_logits]
    eps = torch.randn(len(x), e.latent_dim)
    return HandELBO.apply(x, eps, 1.0, len(e.body)//2,
                          *[t for l in lins for t in (l.weight, l.bias)])[0]


class GradsInForward(torch.autograd.Function):
    "`by_hand` as one autograd node: the forward computes every gradient, the backward hands them over"
    @staticmethod
    def forward(ctx, x:Tensor, names:tuple, *ps:Tensor):
        P = dict(zip(names, ps))
        loss = by_hand(P, x)
        ctx.grads = [p.grad for p in ps]
        for p in ps: p.grad = None
        ctx.save_for_backward(*ps)                  # an in-place change before backward raises
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, go:Tensor):
        ctx.saved_tensors
        gs, ctx.grads = ctx.grads, None
        return None, None, *[g.mul_(go) for g in gs]


def grads_in_forward_loss(m, x:Tensor) -> Tensor:
    P = dict(m.named_parameters())
    return GradsInForward.apply(x, tuple(P), *P.values())


def fused_vae_loss(self, batch) -> ELBO:
    "What `VAE.loss` would be with the grads-in-forward node (784-400-20, training only)"
    if not (self.training and torch.is_grad_enabled()): return VAE_LOSS(self, batch)
    loss = grads_in_forward_loss(self, batch.x.flatten(1))
    return ELBO(loss, loss.detach(), loss.detach()*0)  # recon/kl are not split here


VAE_LOSS = VAE.loss


def fit_epochs(epochs:int, repeats:int, threads:int) -> dict:
    "Seconds of each `fit` epoch with `VAE.loss` as it is and with the grads-in-forward node"
    data = get_data('fashion', binarize=None, valid_size=0, batch_size=256)
    secs, test = {'autograd': [], 'grads in forward': []}, {'autograd': [], 'grads in forward': []}
    for r in range(repeats):
        for k in secs:
            VAE.loss = fused_vae_loss if k == 'grads in forward' else VAE_LOSS
            try:
                torch.manual_seed(r); m = mlp_vae()
                h = fit(m, (data.train, data.test), epochs=epochs, seed=r, batch_size=256, lr=3e-3,
                        progress=False)
            finally: VAE.loss = VAE_LOSS
            secs[k] += [row['time'] for row in h]; test[k].append(h[-1]['valid_loss'])
            print(f"fit, {k:>16}, repeat {r+1}: " + ', '.join(f"{row['time']:.3f}" for row in h)
                  + f" s/epoch; test loss {h[-1]['valid_loss']:.2f}", flush=True)
    return {k: {'s_per_epoch': [round(v, 4) for v in secs[k]],
                'median': round(statistics.median(secs[k]), 4),
                'test_loss': [round(v, 3) for v in test[k]]} for k in secs}


def max_rel_diff(grads:dict, P:dict) -> float:
    "Largest gradient difference between `grads` and the parameters' `.grad`, relative"
    return max(((grads[k] - p.grad).abs().max()/p.grad.abs().max()).item()
               for k, p in P.items())


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--in-fit', action='store_true', help='also time whole fit epochs both ways')
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--out', default=None, help='JSON record (default: bench/results/'
                   'manual_backward_<kernel level>.json)')
    a = p.parse_args()
    torch.set_num_threads(a.threads); flush_denormals()
    x4 = get_data('fashion', binarize=None, valid_size=0).train.x[:a.batch_size].clone()
    x = x4.flatten(1)
    torch.manual_seed(0)
    m = mlp_vae(); P = dict(m.named_parameters())
    torch.manual_seed(1); la = by_hand(P, x); ga = {k: p.grad for k, p in P.items()}
    m.zero_grad(set_to_none=True)
    torch.manual_seed(1); lb = m.loss(Batch(x4, x4))[0]; lb.backward()
    rel = max_rel_diff(ga, P)
    print(f"loss by hand {la.item():.4f}, autograd {lb.item():.4f}; "
          f"largest relative gradient difference {rel:.1e}")
    assert rel < 1e-5
    m.zero_grad(set_to_none=True)
    torch.manual_seed(1); lc = function_loss(m, x); lc.backward()
    relf = max_rel_diff(ga, P)
    print(f"as one autograd.Function: loss {lc.item():.4f}, gradient difference from by hand {relf:.1e}")
    assert relf < 1e-5
    m.zero_grad(set_to_none=True)
    torch.manual_seed(1); ld = grads_in_forward_loss(m, x); ld.backward()
    relg = max_rel_diff(ga, P)
    print(f"with the gradients in the forward: loss {ld.item():.4f}, difference from by hand {relg:.1e}")
    assert relg < 1e-5
    opt = torch.optim.Adam(m.parameters(), lr=3e-3, fused=True)
    gemm = gemm_floor(m, a.batch_size)
    def autograd():  # leaves the gradients in place, for the Adam timing
        opt.zero_grad(set_to_none=True); m.loss(Batch(x4, x4))[0].backward(); opt.step()
    def hand():
        opt.zero_grad(set_to_none=True); by_hand(P, x); opt.step()
    def function():
        opt.zero_grad(set_to_none=True); function_loss(m, x).backward(); opt.step()
    def in_forward():
        opt.zero_grad(set_to_none=True); grads_in_forward_loss(m, x).backward(); opt.step()
    autograd()
    res = best_ms({'gemm (floor)': gemm, 'Adam (fused)': opt.step,
                   'step, autograd': autograd, 'step, by hand': hand,
                   'step, Function': function, 'step, Function, grads in forward': in_forward})
    print(f"# {torch.backends.cpu.get_cpu_capability()}, {a.threads} threads, "
          f"batch {a.batch_size}, load {os.getloadavg()[0]:.2f}")
    for k, v in res.items(): print(f"{k:>16}: {v:6.3f} ms")
    for k in ('by hand', 'Function', 'Function, grads in forward'):
        print(f"{k} / autograd: {res[f'step, {k}']/res['step, autograd']:.3f}")
    in_fit = fit_epochs(a.epochs, a.repeats, a.threads) if a.in_fit else None
    if in_fit:
        r = in_fit['grads in forward']['median']/in_fit['autograd']['median']
        print(f"fit epochs, median: autograd {in_fit['autograd']['median']:.3f} s, grads in forward "
              f"{in_fit['grads in forward']['median']:.3f} s ({r:.3f})")
    cap = torch.backends.cpu.get_cpu_capability()
    out = Path(a.out or Path(__file__).resolve().parent/'results'/f'manual_backward_{cap.lower()}.json')
    out.write_text(json.dumps({
        'ms_per_step': {k: round(v, 3) for k, v in res.items()},
        'gradient_difference': {'by_hand': rel, 'function': relf, 'grads_in_forward': relg},
        'fit_epochs': in_fit,
        'batch_size': a.batch_size, 'threads': a.threads, 'capability': cap, 'cpu': cpu_caps(),
        'torch': torch.__version__, 'python': platform.python_version(),
        'load_average': [round(v, 2) for v in os.getloadavg()],
        'command': 'python bench/manual_backward.py ' + ' '.join(sys.argv[1:])}, indent=1) + '\n')
    print(f"wrote {out}")


if __name__ == '__main__':
    main()
