"""An interactive textbook on variational autoencoders, and the PyTorch library it builds

Modules:

- `vae_book.data`: MNIST and Fashion-MNIST as in-memory tensors, with binarization, splits and fast shuffled batches; plus small 2-D toy sets.
- `vae_book.metrics`: Importance-sampled test NLL, active units and per-dimension KL for VAEs; a small classifier trained here, and the sample metrics built on it: class accuracy, class coverage and a Fréchet distance (FD-LeNet).
- `vae_book.models.vae`: Encoder → $(\mu, \log\sigma^2)$ → reparameterized $z$ → decoder: trained on the ELBO, it samples, interpolates, and gives a likelihood.
- `vae_book.train`: One `fit` for every model in the book: a config dataclass, progress bars, history, evaluation, mixed precision on GPUs, clear errors, and checkpoints that round-trip."""

__version__ = "0.0.1"
