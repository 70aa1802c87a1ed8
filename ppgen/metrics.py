"""Metrics shared by every family: NLL in nats and bits/dim, 2-D mode coverage, kernel MMD.

References:
    | VEEGAN (Srivastava et al., 2017) https://arxiv.org/abs/1705.07761 -- the mode-coverage protocol
    | A Kernel Two-Sample Test (Gretton et al., 2012) -- MMD
"""

import math

import torch
from torch import Tensor

__all__ = ["bits_per_dim", "mode_coverage", "mmd"]


def bits_per_dim(nll_nats: float, dim: int) -> float:
    r"""Nats per example -> bits per dimension: nll / (D ln 2)."""
    return nll_nats / (dim * math.log(2))


def mode_coverage(samples: Tensor, modes: Tensor, std: float, threshold: float = 3.0) -> dict:
    r"""The VEEGAN/PacGAN protocol for mixtures of Gaussians.

    A sample is high quality when it lies within ``threshold`` std of its nearest mode; a mode is
    covered when at least one high-quality sample is nearest to it.

    Arguments:
        samples: (N, 2).
        modes: (K, 2).
        std: the component standard deviation.

    Returns:
        ``modes_covered``, ``modes_total``, ``hq_fraction`` and ``mode_reverse_kl`` (KL between the
        histogram of high-quality samples over modes and the uniform weights, in nats).
    """
    samples = samples.detach().double().cpu()
    modes = modes.double().cpu()
    d = torch.cdist(samples, modes)  # (N, K)
    dist, nearest = d.min(dim=1)
    hq = dist < threshold * std
    counts = torch.bincount(nearest[hq], minlength=len(modes)).double()
    covered = int((counts > 0).sum())
    p = counts / counts.sum().clamp_min(1)
    nz = p > 0
    reverse_kl = float((p[nz] * (p[nz] * len(modes)).log()).sum()) if hq.any() else float("inf")
    return {
        "modes_covered": covered,
        "modes_total": len(modes),
        "hq_fraction": float(hq.double().mean()),
        "mode_reverse_kl": reverse_kl,
    }


def mmd(x: Tensor, y: Tensor, bandwidths=(0.1, 1.0, 10.0)) -> float:
    r"""Unbiased squared MMD with a sum of Gaussian kernels. x: (N, *), y: (M, *)."""
    x = x.reshape(len(x), -1).double()
    y = y.reshape(len(y), -1).double()
    xx, yy, xy = torch.cdist(x, x) ** 2, torch.cdist(y, y) ** 2, torch.cdist(x, y) ** 2
    scale = x.shape[1]
    k = lambda d2: sum(torch.exp(-d2 / (2 * b**2 * scale)) for b in bandwidths)  # noqa: E731
    n, m = len(x), len(y)
    kxx = (k(xx).sum() - k(xx).diagonal().sum()) / (n * (n - 1))
    kyy = (k(yy).sum() - k(yy).diagonal().sum()) / (m * (m - 1))
    return float(kxx + kyy - 2 * k(xy).mean())
