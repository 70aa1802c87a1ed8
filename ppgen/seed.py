"""One seeding helper for torch, numpy, Python's random and Pyro."""

import random

import numpy as np
import pyro
import torch

__all__ = ["seed_everything"]


def seed_everything(seed: int) -> None:
    r"""Seeds every random number generator that ppgen uses.

    Arguments:
        seed: a non-negative integer.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
