"""Outlier rejection: score inputs by how unlikely a trained model finds them, and measure it by AUROC.

What a score means depends on the model's density kind, and every score says which it is:

- exact: -log p(x);
- lower-bound: -IWAE-K (an importance-sampled estimate, a stochastic lower bound of log p(x) in
  expectation) where the model has ``estimate_log_prob``, else -ELBO;
- unnormalized: the energy E(x) = -log p(x) - log Z (log Z is one constant: the ranking, hence the
  AUROC, is that of -log p(x));
- implicit: minus the discriminator's (critic's) logit where the model keeps one, flagged
  "not a density": it ranks inputs by how real the discriminator found them at the end of training.

Conditional models score the marginal log p(x) = logsumexp_y [log p(x | y) + log p(y)].
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ppgen.data import Dataset
from ppgen.errors import PPGenError

__all__ = [
    "model_log_density",
    "score_name",
    "outlier_score",
    "auroc",
    "roc",
    "flip_pixels",
    "shift_images",
    "uniform_noise",
    "image_outliers",
    "off_support",
    "held_out_class",
    "anomaly_table",
]


def model_log_density(
    model, x: Tensor, y: Tensor | None = None, num_samples: int = 100
) -> tuple[Tensor, str]:
    r"""What the model knows of log p(x) (or log p(x | y)), (B,), and its kind.

    Kinds: "exact"; "iwae-K" (lower-bound models with ``estimate_log_prob``) or "elbo"; "unnormalized"
    (-E(x) = log p(x) + log Z); "discriminator" (implicit models: the discriminator's logit, not a density).
    """
    if model.density == "exact":
        return model.log_prob(x, y), "exact"
    if model.density == "lower-bound":
        estimate = model.estimate_log_prob(x, num_samples, y=y)  # None where the model has no IWAE
        if estimate is not None:
            return estimate, f"iwae-{num_samples}"
        return model.log_prob(x, y), "elbo"
    if model.density == "unnormalized":
        return model.log_prob(x, y), "unnormalized"
    score = model.discriminate(x, y)  # None where the model declares no discriminator
    if score is not None:
        return score, "discriminator"
    raise PPGenError(f"{model.name}: an implicit model without a discriminator has no outlier score")


def score_name(kind: str) -> str:
    r"""The outlier score of a density kind, in words: "-log p(x) (exact)", "-IWAE-K (bound estimate)", ..."""
    if kind.startswith("iwae-"):
        return f"-IWAE-{kind[5:]} (bound estimate)"
    names = {
        "exact": "-log p(x) (exact)",
        "elbo": "-ELBO (bound)",
        "unnormalized": "energy (unnormalized)",
        "discriminator": "-discriminator logit (not a density)",
    }
    return names.get(kind, kind)


@torch.no_grad()
def outlier_score(
    model, x: Tensor, num_samples: int = 100, log_prior: Tensor | None = None, batch_size: int = 500
) -> tuple[Tensor, str]:
    r"""How anomalous each input is under a trained model: higher is more anomalous.

    Arguments:
        model: a fitted :class:`~ppgen.base.GenerativeModel`, in eval mode.
        x: inputs, (N, *event_shape).
        num_samples: K of the IWAE estimate for lower-bound models.
        log_prior: log p(y), (C,), for conditional models (default uniform).
        batch_size: examples scored at once.

    Returns:
        scores (N,) float64 on the CPU, and the score's kind, e.g. "-log p(x) (exact)".
    """
    model.eval()
    x = x.to(model.device)
    chunks, kind = [], None
    for xb in x.split(batch_size):
        if getattr(model, "conditional", False) and model.spec.num_classes:
            c = model.spec.num_classes
            prior = (
                torch.full((c,), -math.log(c), dtype=torch.float64)
                if log_prior is None
                else log_prior.double().cpu()
            )
            per_class = []
            for k in range(c):
                y = torch.full((xb.shape[0],), k, dtype=torch.long, device=xb.device)
                lp, kind = model_log_density(model, xb, y, num_samples)
                per_class.append(lp.double().cpu() + prior[k])
            chunks.append(-torch.logsumexp(torch.stack(per_class, 1), 1))
        else:
            lp, kind = model_log_density(model, xb, None, num_samples)
            chunks.append(-lp.double().cpu())
    return torch.cat(chunks), score_name(kind)


def _labels_and_scores(inlier: Tensor, outlier: Tensor) -> tuple[np.ndarray, np.ndarray]:
    inlier, outlier = torch.as_tensor(inlier).double().flatten(), torch.as_tensor(outlier).double().flatten()
    if inlier.numel() == 0 or outlier.numel() == 0:
        raise PPGenError("AUROC needs at least one inlier and one outlier score")
    scores = torch.cat([inlier, outlier])
    if not torch.isfinite(scores).all():
        scores = torch.nan_to_num(scores, nan=math.inf, posinf=1e300, neginf=-1e300)
    labels = np.r_[np.zeros(inlier.numel()), np.ones(outlier.numel())]
    return labels, scores.numpy()


def auroc(inlier_scores: Tensor, outlier_scores: Tensor) -> float:
    r"""The area under the ROC curve of telling outliers (positive) from inliers by a score where higher
    means more anomalous: the probability that a random outlier scores above a random inlier (ties 1/2).

    Example:
        >>> auroc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0]))
        1.0
    """
    from sklearn.metrics import roc_auc_score  # imported here: sklearn is slow to import

    labels, scores = _labels_and_scores(inlier_scores, outlier_scores)
    return float(roc_auc_score(labels, scores))


def roc(inlier_scores: Tensor, outlier_scores: Tensor) -> tuple[np.ndarray, np.ndarray]:
    r"""The ROC curve: (false-positive rates, true-positive rates) as thresholds sweep the scores."""
    from sklearn.metrics import roc_curve

    labels, scores = _labels_and_scores(inlier_scores, outlier_scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


# --- outlier sets ---------------------------------------------------------------------------------
def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uniform_noise(n: int, event_shape: tuple, seed: int = 0) -> Tensor:
    r"""n images of uniform binary noise (every pixel Bernoulli(1/2)), (n, *event_shape)."""
    return torch.bernoulli(torch.full((n, *event_shape), 0.5), generator=_generator(seed))


def flip_pixels(x: Tensor, fraction: float = 0.1, seed: int = 0) -> Tensor:
    r"""Binary x with a random ``fraction`` of each example's pixels flipped (exactly round(fraction D))."""
    flat = x.reshape(x.shape[0], -1)
    k = round(fraction * flat.shape[1])
    pick = torch.rand(flat.shape, generator=_generator(seed)).argsort(1)[:, :k]
    out = flat.clone()
    out.scatter_(1, pick, 1 - flat.gather(1, pick))
    return out.reshape(x.shape)


def shift_images(x: Tensor, pixels: int = 1, seed: int = 0) -> Tensor:
    r"""Images (N, C, H, W), each moved ``pixels`` up, down, left or right (at random), zero-filled."""
    if x.ndim != 4:
        raise PPGenError(f"shifting needs images (N, C, H, W), got shape {tuple(x.shape)}")
    direction = torch.randint(4, (x.shape[0],), generator=_generator(seed))
    h, w, p = x.shape[-2], x.shape[-1], pixels
    padded = F.pad(x, (p, p, p, p))  # (N, C, H + 2p, W + 2p), zeros around
    out = torch.empty_like(x)
    for d, (dy, dx) in enumerate([(p, 0), (-p, 0), (0, p), (0, -p)]):  # up, down, left, right
        rows = direction == d
        out[rows] = padded[rows, :, p + dy : p + dy + h, p + dx : p + dx + w]
    return out


def image_outliers(test: Dataset, seed: int = 0) -> dict[str, Tensor]:
    r"""The outlier sets of binary images, each as large as the test split: "noise" (uniform binary),
    "flip10" (10% of the pixels of each test digit flipped), "shift1" (test digits moved by one pixel)."""
    if test.kind != "binary" or not test.spec.is_image:
        raise PPGenError(f"image outlier sets need binary images, got {test.kind} {test.event_shape}")
    return {
        "noise": uniform_noise(len(test), test.event_shape, seed),
        "flip10": flip_pixels(test.x, 0.1, seed + 1),
        "shift1": shift_images(test.x, 1, seed + 2),
    }


def off_support(train: Dataset, test: Dataset, n: int = 1000, seed: int = 0) -> Tensor:
    r"""n points of 2-D continuous data off the data's support, (n, 2).

    Uniform draws on the test set's bounding box widened by a quarter on each side, kept where the
    true log density (synthetic sets) is below that of every test point, or, without a true density,
    where the distance to the nearest training point exceeds the largest such distance of a test point.
    """
    if test.kind != "continuous" or test.event_shape != (2,):
        raise PPGenError(f"off-support points need 2-D continuous data, got {test.kind} {test.event_shape}")
    lo, hi = test.x.min(0).values, test.x.max(0).values
    lo, hi = lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo)
    g = _generator(seed)
    ref = train.x[torch.randperm(len(train), generator=g)[:2000]]
    if test.truth is not None:
        bar = float(test.log_prob(test.x).min())
        keep = lambda p: test.log_prob(p) < bar  # noqa: E731
    else:
        bar = float(torch.cdist(test.x[:2000], ref).min(1).values.max())
        keep = lambda p: torch.cdist(p, ref).min(1).values > bar  # noqa: E731
    found, total = [], 0
    for _ in range(100):
        p = lo + (hi - lo) * torch.rand(4 * n, 2, generator=g)
        p = p[keep(p)]
        found.append(p)
        total += len(p)
        if total >= n:
            return torch.cat(found)[:n]
    raise PPGenError("could not find points off the support inside the widened bounding box")


def held_out_class(train: Dataset, test: Dataset, label: int) -> tuple[Dataset, Dataset, Tensor]:
    r"""(train without ``label``, test without ``label``, the test examples of ``label`` as outliers)."""
    if train.y is None or test.y is None:
        raise PPGenError("a held-out class needs labelled data")
    keep_train, keep_test = train.y != label, test.y != label
    return (
        train.select(torch.nonzero(keep_train).flatten()),
        test.select(torch.nonzero(keep_test).flatten()),
        test.x[~keep_test],
    )


def anomaly_table(models: dict, inliers: Tensor, outliers: dict[str, Tensor], num_samples: int = 100) -> dict:
    r"""AUROC of every model on every outlier set against the same inliers.

    Arguments:
        models: name -> fitted model.
        inliers: in-distribution test inputs, (N, *event_shape).
        outliers: outlier-set name -> inputs (M, *event_shape).
        num_samples: K of the IWAE estimate for lower-bound models.

    Returns:
        name -> {"score": the score's kind, "auroc": {set: float}, "roc": {set: (fpr, tpr)}}, or
        name -> {"score": None, "reason": why not} for a model without a score.
    """
    out = {}
    for name, model in models.items():
        try:
            inlier, kind = outlier_score(model, inliers, num_samples)
        except PPGenError as e:
            out[name] = {"score": None, "reason": str(e)}
            continue
        row = {"score": kind, "auroc": {}, "roc": {}}
        for set_name, x in outliers.items():
            scores, _ = outlier_score(model, x, num_samples)
            row["auroc"][set_name] = auroc(inlier, scores)
            row["roc"][set_name] = roc(inlier, scores)
        out[name] = row
    return out
