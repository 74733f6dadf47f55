"""An interactive textbook on variational autoencoders, and the PyTorch library it builds

Modules:

- `vae_book.canvas`: Fast pictures for live widgets: images as PNG bytes, and codes on a plane.
- `vae_book.checkpoint`: `save` and `load`: atomic, checksummed checkpoints that load in a fresh process.
- `vae_book.core`: Devices, seeds and the book's plotting set-up: the few things every chapter needs.
- `vae_book.data`: MNIST, Fashion-MNIST, offline digits and your data: in-memory tensors, fast batches.
- `vae_book.datasets`: Finding, downloading and checking MNIST, Fashion-MNIST and the offline digits.
- `vae_book.estimators`: Sampling blocks gradients; writing z = μ + σ·ε lets them through, with far less noise than the score-function estimator.
- `vae_book.experiments.conditional`: What chapter 7 measures a conditional VAE with: the judge that names the class of a sample, and the importance-sampled likelihood with labels.
- `vae_book.experiments.encoders`: What chapter 8 runs on its encoders: three VAEs of similar size trained and scored alike, the table of the results, and the attention maps of the transformer.
- `vae_book.experiments.gan`: The drivers behind chapter 9: watch a run with the LeNet judge, score samples, and train and compare the VAE, the GANs and the VAE-GAN over seeds.
- `vae_book.losses.elbo`: What KL divergence measures, the closed-form Gaussian KL, the evidence lower bound, and its importance-weighted tightening, all checked on a model whose likelihood is exact.
- `vae_book.losses.recon`: Binary cross-entropy and squared error are negative log-likelihoods: where they come from, and what their knobs do.
- `vae_book.metrics`: Importance-sampled test NLL, active units and per-dimension KL for VAEs; the sample metrics built on the LeNet judge of `vae_book.models.lenet`: class coverage, a Fréchet distance (FD-LeNet) and precision and recall.
- `vae_book.models.autoencoder`: An encoder squeezes an image through a few numbers; a decoder rebuilds it: what the bottleneck keeps.
- `vae_book.models.cvae`: Tell the model what to draw: encoder and decoder both see the label, so the code is free to hold the style.
- `vae_book.models.encoders`: Same `VAE` class, new encoders: convolutions and attention over patches, compared at equal size.
- `vae_book.models.gan`: A GAN and a VAE trained on the same images with the same decoder layout, measured side by side: samples, class coverage, training stability and likelihood; then the VAE-GAN, which judges its reconstructions through a discriminator's eyes.
- `vae_book.models.latent_models`: Sampling N(0, I) lands in regions no image maps to: learn the prior from the codes, make the codes discrete, or stack a second latent layer, each measured on real digits.
- `vae_book.models.lenet`: A small CNN classifier for 28x28 grey images: the judge whose predictions and features score generated samples.
- `vae_book.models.vae`: Encoder → (μ, log σ²) → reparameterized z → decoder: trained on the ELBO, it samples, interpolates, measures a likelihood, and shows what β, warm-up and free bits do to its latent code.
- `vae_book.plots`: Figures from numbers: image grids, codes in the plane, KL bars and training curves.
- `vae_book.pretrained`: Small checkpoints in the package, so every explorer works before you train anything.
- `vae_book.steps`: What `fit` does with each batch: every player moves once (its loss, a non-finite check, backward, one Adam step), and an epoch of such steps, with AMP, gradient averaging, a monitor and Ctrl-C handling.
- `vae_book.train`: One `fit` for every model in the book, games included: a config dataclass, progress bars, history, evaluation, mixed precision, `torchrun`, Ctrl-C handling and clear errors.
- `vae_book.viz`: Figures that run a model: decoded manifolds, interpolations, and slider figures.
- `vae_book.web`: Decoders that run in the reader's browser: weights as JavaScript and a live explorer.
- `vae_book.widgets`: Latent-space explorers for JupyterLab: interpolate between two images or two classes, traverse each latent dimension, and pick the class of a conditional model; every slider step redraws at once."""

__version__ = "0.0.1"
