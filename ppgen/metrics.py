"""Metrics shared by every family: NLL in nats and bits/dim, 2-D mode coverage, kernel MMD, and the
sample-quality metrics of images: Fréchet distance in a digits classifier's features ("FD-digits")
and k-NN precision/recall.

References:
    | VEEGAN (Srivastava et al., 2017) https://arxiv.org/abs/1705.07761 -- the mode-coverage protocol
    | A Kernel Two-Sample Test (Gretton et al., 2012) -- MMD
    | GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium (Heusel et al., 2017)
    | https://arxiv.org/abs/1706.08500 -- the Fréchet distance between feature Gaussians (FID)
    | Improved Precision and Recall Metric for Assessing Generative Models (Kynkäänniemi et al., 2019)
    | https://arxiv.org/abs/1904.06991
"""

import math

import torch
from torch import Tensor

from ppgen.errors import PPGenError

__all__ = [
    "bits_per_dim",
    "mode_coverage",
    "mmd",
    "frechet_distance",
    "knn_precision_recall",
    "image_sample_quality",
]


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


def frechet_distance(x: Tensor, y: Tensor) -> float:
    r"""||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)), Gaussians fitted to x: (N, F), y: (M, F).

    Tr (S_x S_y)^(1/2) is the sum of the square roots of the eigenvalues of S_x^(1/2) S_y S_x^(1/2),
    computed in float64 with symmetric eigendecompositions (no complex matrix square root).
    """
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    if len(x) < 2 or len(y) < 2:
        raise PPGenError(f"frechet_distance needs at least 2 points on each side, got {len(x)} and {len(y)}")
    mx, my = x.mean(0), y.mean(0)
    sx, sy = torch.cov(x.T).reshape(x.shape[1], -1), torch.cov(y.T).reshape(y.shape[1], -1)
    ex, vx = torch.linalg.eigh(sx)
    root_x = (vx * ex.clamp_min(0).sqrt()) @ vx.T
    cross = torch.linalg.eigvalsh(root_x @ sy @ root_x).clamp_min(0).sqrt().sum()
    return float(((mx - my) ** 2).sum() + sx.trace() + sy.trace() - 2 * cross)


def _kth_neighbour_radii(x: Tensor, k: int) -> Tensor:
    d = torch.cdist(x, x)  # (N, N), the diagonal is each point's zero distance to itself
    return d.kthvalue(min(k + 1, len(x)), dim=1).values


def knn_precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> dict:
    r"""k-NN precision and recall of Kynkäänniemi et al.

    Each set's manifold is the union of balls around its points with radius the distance to the k-th
    nearest neighbour in the same set. Precision is the fraction of ``fake`` inside the real manifold
    (are the samples realistic?), recall the fraction of ``real`` inside the fake manifold (is the data
    covered?).

    Arguments:
        real: (N, *) features or points of the data.
        fake: (M, *) features or points of the samples.
        k: the neighbourhood size (3 in the paper).

    Returns:
        ``precision`` and ``recall`` in [0, 1].
    """
    real, fake = real.reshape(len(real), -1).double(), fake.reshape(len(fake), -1).double()
    if len(real) <= k or len(fake) <= k:
        raise PPGenError(
            f"knn_precision_recall needs more than k={k} points on each side, got {len(real)} and {len(fake)}"
        )
    r_real, r_fake = _kth_neighbour_radii(real, k), _kth_neighbour_radii(fake, k)
    d = torch.cdist(fake, real)  # (M, N)
    precision = (d <= r_real.unsqueeze(0)).any(dim=1).double().mean()
    recall = (d <= r_fake.unsqueeze(1)).any(dim=0).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def image_sample_quality(samples: Tensor, test, root=None, k: int = 3) -> dict:
    r"""Sample quality of an image model against the test split, for every family.

    The Fréchet distance and precision/recall are computed in the penultimate-layer features of a small
    classifier of the data set, trained once on its train split and cached (:mod:`ppgen.features`);
    the MMD in pixel space scaled to [0, 1]. Data sets without such a classifier get None for the
    feature metrics.

    Arguments:
        samples: (N, C, H, W) model samples in the data's support (N >= 1000 recommended: FD is biased
            upwards for small N).
        test: the test :class:`~ppgen.data.Dataset`.
        root: the folder of the MNIST files (to train the MNIST classifier the first time).
        k: the neighbourhood size of precision/recall.

    Returns:
        ``fd_digits``, ``precision``, ``recall`` and ``mmd``.
    """
    from ppgen import features

    shape = tuple(test.event_shape)
    if samples.ndim != len(shape) + 1 or tuple(samples.shape[1:]) != shape:
        raise PPGenError(
            f"image_sample_quality: expected samples of shape (N, {', '.join(map(str, shape))}), "
            f"got {tuple(samples.shape)}"
        )
    samples = samples.detach().float().cpu()
    levels = test.spec.num_categories
    scale = (levels - 1) if levels else 1.0
    out = {"fd_digits": None, "precision": None, "recall": None}
    if features.has_classifier(test.name, test.spec):
        net = features.classifier(test.name, test.spec, root=root)
        f_fake, f_real = features.extract(net, samples), features.extract(net, test.x)
        out["fd_digits"] = frechet_distance(f_real, f_fake)
        out.update(knn_precision_recall(f_real, f_fake, k))
    out["mmd"] = mmd(test.x.float().cpu() / scale, samples / scale)
    return out
