"""Quality per second of training: a held-out score taken at log-spaced moments of training time.

A :class:`QualityMonitor` is the ``on_epoch_end`` callback of :func:`ppgen.fit` and its ``clock``:
the clock counts *training* seconds (wall time less the monitor's own evaluations), so the budget
and the logged seconds leave evaluation out. At the end of an epoch whose training time has passed
the next point of a geometric schedule, it scores the model on a validation split held out of train.
Its random draws use a forked RNG: training takes the same random stream whether or not (and
whenever) it evaluates.
"""

import math
import time

import torch

from ppgen.app.samplers import fast_sampler, use_sampler
from ppgen.data import Dataset
from ppgen.inference.evaluate import test_log_prob
from ppgen.metrics import image_sample_quality, mmd, mode_coverage

__all__ = ["QualityMonitor", "quality_kind"]


def quality_kind(model, data: Dataset, num_samples: int) -> tuple[str, str, bool]:
    r"""What the curve of ``model`` on ``data`` measures: (metric key, label, higher is better).

    Density models: the validation NLL, exact or estimated (IWAE with ``num_samples`` importance
    samples for VAEs, the ELBO for ddpm, quadrature for a 2-D ebm). Others: the fraction of
    high-quality samples on mixtures of Gaussians, FD-digits on images with a feature classifier,
    the MMD to the validation split otherwise.
    """
    probe = model.evaluation_log_prob(data.x[:2].to(model.device), _labels(model, data, 2), num_samples=1)
    if probe is not None:
        return "val_nll", "validation NLL (nats)", False
    if data.truth is not None and getattr(data.truth, "modes", None) is not None:
        return "hq_fraction", "high-quality samples", True
    if data.spec.is_image:
        return "fd_digits", "FD-digits", False
    return "mmd", "MMD to validation", False


def _labels(model, data: Dataset, n: int):
    return None if data.y is None or not model.conditional else data.y[:n].to(model.device)


class QualityMonitor:
    r"""The ``on_epoch_end`` callback that records (training seconds, validation quality) points.

    Arguments:
        valid: the validation split (held out of train).
        num_samples: K of the IWAE estimate for the validation NLL of VAEs.
        n_samples: samples drawn for a sample metric.
        first: the first evaluation time in training seconds; then every ``growth`` times more, but at
            least ``min_gap`` seconds after the last and at most ``max_gap`` seconds, and at least
            ``cost_ratio`` times the last evaluation's seconds (so that scoring costs at most about
            1 / ``cost_ratio`` of the training time, besides the final score).
    """

    def __init__(
        self,
        valid: Dataset,
        num_samples: int = 10,
        n_samples: int = 500,
        first: float = 0.25,
        growth: float = 2.0,
        min_gap: float = 0.25,
        max_gap: float = 30.0,
        cost_ratio: float = 3.0,
    ):
        self.valid = valid
        self.num_samples, self.n_samples = num_samples, n_samples
        self.first, self.growth, self.min_gap, self.max_gap = first, growth, min_gap, max_gap
        self.cost_ratio = cost_ratio
        self.points: list[dict] = []
        self.log: list[dict] = []
        self.eval_seconds = 0.0
        self.kind = None
        self._next = first
        self._last_epoch = None

    def clock(self) -> float:
        r"""Training seconds: wall seconds less the monitor's evaluations (``ppgen.fit(clock=...)``)."""
        return time.perf_counter() - self.eval_seconds

    def __call__(self, epoch: int, row: dict, objective) -> None:
        self.log.append(row)
        if row["seconds"] >= self._next:
            self.record(objective.model, row["seconds"], row["epoch"], row["steps"])

    def finish(self, model) -> None:
        r"""Scores the final model unless its last epoch was scored already."""
        if self.log:
            row = self.log[-1]
            self.record(model, row["seconds"], row["epoch"], row["steps"])

    @torch.no_grad()
    def record(self, model, t: float, epoch: int, steps: int) -> None:
        if self._last_epoch == epoch:
            return
        start = time.perf_counter()
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(12345)
            value = self.score(model)
        model.train(was_training)
        seconds = time.perf_counter() - start
        self.eval_seconds += seconds
        self.points.append(
            {"train_seconds": t, "epoch": epoch, "steps": steps, "value": value, "eval_seconds": seconds}
        )
        self._last_epoch = epoch
        # log-spaced, min_gap to max_gap apart, and costing at most about 1 / cost_ratio of training time
        self._next = min(max(t * self.growth, t + self.min_gap), t + self.max_gap)
        self._next = max(self._next, t + self.cost_ratio * seconds)

    def score(self, model) -> float | None:
        if self.kind is None:
            self.kind = quality_kind(model, self.valid, self.num_samples)
        key = self.kind[0]
        if key == "val_nll":
            lp, kind = test_log_prob(model, self.valid, num_samples=self.num_samples)
            self.nll_kind = kind
            value = float(-lp.mean())
            return value if math.isfinite(value) else None
        with use_sampler(model, fast_sampler(model)):
            x = model.sample(self.n_samples).detach().cpu()
        if key == "hq_fraction":
            truth = self.valid.truth
            return mode_coverage(x, truth.means, truth.std)["hq_fraction"]
        if key == "fd_digits":
            return image_sample_quality(x, self.valid, root=self.valid.root)["fd_digits"]
        ref = self.valid.x[: self.n_samples].float()
        return mmd(ref.reshape(len(ref), -1), x.float().reshape(len(x), -1))
