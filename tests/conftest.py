"""Fixtures shared by several test files."""
import pytest
import torch

from vae_book.core import set_seed
from vae_book.models.vae import mlp_vae


@pytest.fixture(scope="module")
def vae2():
    "A small untrained 2-D VAE (fixed seed), in eval mode"
    set_seed(0); return mlp_vae(latent_dim=2, hidden_dim=32).eval()


def pytest_runtest_setup(item):
    "`@pytest.mark.cuda` tests need a CUDA GPU: skip them where there is none"
    if item.get_closest_marker("cuda") and not torch.cuda.is_available(): pytest.skip("needs a CUDA GPU")
