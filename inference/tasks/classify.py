"""Bayes-rule classification from class-conditional densities, discriminative baselines, the reject option.

A generative classifier picks

    y*(x) = argmax_y [log p(x | y) + log p(y)],   p(y | x) = p(x | y) p(y) / p(x),

from a model of p(x | y): one conditional model (read at each label), or one unconditional model per
class. Unlike a discriminative classifier it also knows p(x) = sum_y p(x | y) p(y), so it can refuse
inputs it finds unlikely instead of "predicting labels for any input": the reject option trades the
fraction of inputs answered (coverage) for the accuracy of the answers.
"""

import math

import numpy as np
import torch
from torch import Tensor

from ppgen.base import create
from ppgen.data import Dataset
from ppgen.errors import PPGenError
from ppgen.inference.tasks.anomaly import model_log_density
from ppgen.inference.trainer import fit

__all__ = [
    "class_log_prior",
    "class_log_likelihoods",
    "bayes_classify",
    "fit_per_class",
    "discriminative_baselines",
    "reject_curve",
]


def class_log_prior(labels: Tensor, num_classes: int) -> Tensor:
    r"""log p(y) from the label frequencies of the training split (add-one smoothed), (C,) float64."""
    counts = torch.bincount(torch.as_tensor(labels).long(), minlength=num_classes).double() + 1
    return (counts / counts.sum()).log()


@torch.no_grad()
def class_log_likelihoods(
    model, x: Tensor, num_classes: int | None = None, num_samples: int = 100, batch_size: int = 500
) -> tuple[Tensor, str]:
    r"""log p(x | y) for every class, (N, C) float64, and its kind.

    Arguments:
        model: a conditional model (``model.conditional``), read at y = 0, ..., C-1, or a sequence of
            C unconditional models, the c-th fitted to class c.
        x: inputs, (N, *event_shape).
        num_classes: C (default: the conditional model's spec, or the number of models).
        num_samples: K of the IWAE estimate for lower-bound models.

    Returns:
        (N, C) log-likelihoods and what they are: "exact", "iwae-K" (an estimate) or "elbo" (a bound).
    """
    if isinstance(model, (list, tuple)):
        per_class = list(model)
        get = lambda c, xb: model_log_density(
            per_class[c].eval(), xb.to(per_class[c].device), None, num_samples
        )  # noqa: E731
        num_classes = len(per_class)
    elif getattr(model, "conditional", False):
        model.eval()
        num_classes = num_classes or model.spec.num_classes

        def get(c, xb):
            xb = xb.to(model.device)
            return model_log_density(
                model, xb, torch.full((xb.shape[0],), c, dtype=torch.long, device=xb.device), num_samples
            )

    else:
        raise PPGenError(
            f"{getattr(model, 'name', type(model).__name__)} is unconditional: "
            "give one model per class (see fit_per_class) or a conditional model"
        )
    if num_classes is None or num_classes < 2:
        raise PPGenError(f"Bayes-rule classification needs at least two classes, got {num_classes}")
    rows, kind = [], None
    for xb in x.split(batch_size):
        cols = []
        for c in range(num_classes):
            lp, kind = get(c, xb)
            cols.append(lp.double().cpu())
        rows.append(torch.stack(cols, 1))
    return torch.cat(rows), kind


def bayes_classify(log_likelihoods: Tensor, log_prior: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""The Bayes rule from class-conditional log densities.

    Arguments:
        log_likelihoods: log p(x | y), (N, C).
        log_prior: log p(y), (C,).

    Returns:
        predictions argmax_y (N,) long, the posterior log p(y | x) (N, C), and log p(x) (N,).
    """
    joint = log_likelihoods.double() + log_prior.double()
    log_px = torch.logsumexp(joint, 1)
    return joint.argmax(1), joint - log_px[:, None], log_px


def fit_per_class(name: str, train: Dataset, config: dict | None = None, **fit_options) -> list:
    r"""One unconditional model of family ``name`` per class, each fitted to its class's training examples.

    Arguments:
        name: a registry key.
        train: labelled training split.
        config: the model's constructor keywords.
        fit_options: passed to :func:`ppgen.fit` for each class (e.g. ``epochs``, ``budget_seconds``).
    """
    if train.y is None or not train.num_classes:
        raise PPGenError("fitting one model per class needs labelled data")
    models = []
    for c in range(train.num_classes):
        part = train.select(torch.nonzero(train.y == c).flatten())
        if len(part) == 0:
            raise PPGenError(f"class {c} has no training examples")
        model = create(name, part, **(config or {}))
        fit(model, part, progress=False, **fit_options)
        models.append(model.eval())
    return models


def discriminative_baselines(train: Dataset, seed: int = 0) -> dict:
    r"""scikit-learn's logistic regression and a small MLP (one hidden layer of 64 ReLU units), fitted on
    the flattened training inputs; name -> fitted estimator (``predict_proba`` gives p(y | x))."""
    from sklearn.linear_model import LogisticRegression  # imported here: sklearn is slow to import
    from sklearn.neural_network import MLPClassifier

    if train.y is None:
        raise PPGenError("discriminative baselines need labelled data")
    x, y = train.x.reshape(len(train), -1).numpy(), train.y.numpy()
    return {
        "logistic regression": LogisticRegression(max_iter=2000).fit(x, y),
        "mlp": MLPClassifier((64,), max_iter=1000, early_stopping=False, random_state=seed).fit(x, y),
    }


def reject_curve(correct: Tensor, confidence: Tensor) -> tuple[np.ndarray, np.ndarray]:
    r"""Accuracy against coverage when the least confident inputs are refused.

    The inputs are answered in order of decreasing confidence; after the k most confident,
    coverage = k / N and accuracy = (correct answers among them) / k. Outliers mixed into the set have
    no right answer: pass ``correct=False`` for them, so that answering one costs accuracy.

    Arguments:
        correct: (N,) bool, whether the answer to each input is right.
        confidence: (N,) the score a threshold acts on: log p(x) for a generative classifier, the
            max-softmax for a discriminative one; higher is answered first (ties in input order).

    Returns:
        coverages (N,) and accuracies (N,), as numpy arrays.
    """
    correct = torch.as_tensor(correct).bool().flatten()
    confidence = torch.as_tensor(confidence).double().flatten()
    if correct.shape != confidence.shape or correct.numel() == 0:
        raise PPGenError(
            f"correct and confidence must be (N,) alike, got {correct.shape} and {confidence.shape}"
        )
    order = torch.sort(torch.nan_to_num(confidence, nan=-math.inf), descending=True, stable=True).indices
    hits = correct[order].double().cumsum(0)
    k = torch.arange(1, correct.numel() + 1, dtype=torch.float64)
    return (k / correct.numel()).numpy(), (hits / k).numpy()
