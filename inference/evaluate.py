"""Scoring a fitted model on held-out data: the metrics dict that ``metrics.json`` holds."""

import math
import time

import torch

from ppgen.data import Dataset
from ppgen.errors import PPGenError
from ppgen.metrics import bits_per_dim, image_sample_quality, mode_coverage

__all__ = ["evaluate", "test_log_prob", "sampling_cost"]


@torch.no_grad()
def test_log_prob(
    model, data: Dataset, batch_size: int = 500, num_samples: int = 1000
) -> tuple[torch.Tensor | None, str | None]:
    r"""The model's reported log-likelihood of each test example, (N,), and its kind; (None, None) if
    it has none."""
    model.eval()
    device = model.device
    values, kind = [], None
    for start in range(0, len(data), batch_size):
        x = data.x[start : start + batch_size].to(device)
        y = None if data.y is None or not model.conditional else data.y[start : start + batch_size].to(device)
        scored = model.evaluation_log_prob(x, y, num_samples=num_samples)
        if scored is None:
            return None, None
        lp, kind = scored
        values.append(lp.detach().double().cpu())
    return torch.cat(values), kind


@torch.no_grad()
def sampling_cost(
    sample, n: int, batch_size: int = 1000, warmup: int = 2
) -> tuple[torch.Tensor, float, float]:
    r"""The timing protocol of every sampling speed ppgen reports (``evaluate``, ``compare``'s report and
    sampler sweep, the benchmarks): a warm-up call, then n samples in batches of at most ``batch_size``,
    timed in wall and CPU (this process) seconds, the device synchronised before and after.

    CPU seconds are the better measure on a shared machine; wall seconds there include the time other
    processes held the cores. State the thread count beside them (the `ppgen` command runs one torch
    thread unless told otherwise).

    Arguments:
        sample: a function ``n -> (n, *event_shape)`` samples, e.g. ``model.sample``.
        warmup: the number of samples of the untimed warm-up call (0: none).

    Returns:
        ``(samples, wall, cpu)``: the (n, *event_shape) samples and the wall and CPU seconds per 1000 samples.
    """
    if warmup and sample(warmup).is_cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    parts = []
    for start in range(0, n, batch_size):
        parts.append(sample(min(batch_size, n - start)))
    if parts[0].is_cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return torch.cat(parts), wall * 1000 / n, cpu * 1000 / n


def evaluate(
    model, data: Dataset, num_samples: int = 1000, n_mode_samples: int = 2500, n_image_samples: int = 500
) -> dict:
    r"""The test metrics of DESIGN.md: NLL (nats, bits/dim, kind), sampling speed and, on 2-D sets,
    mode coverage and the KL gap to the true entropy.

    Arguments:
        model: a fitted model.
        data: the test split.
        num_samples: K of the importance-sampled estimate for lower-bound models.
        n_mode_samples: samples drawn for the mode-coverage protocol (2,500 in VEEGAN/PacGAN).
        n_image_samples: samples drawn for the image sample-quality metrics (FD-digits, precision,
            recall, MMD against the test set); 0 skips them.
    """
    if len(data) == 0:
        raise PPGenError(f"the test data {data.name!r} hold no examples; expected at least one")
    lp, kind = test_log_prob(model, data, num_samples=num_samples)
    nll = None if lp is None else float(-lp.mean())
    metrics = {
        "model": model.name,
        "data": data.name,
        "family": model.family,
        "density": model.density,
        "n_params": model.num_parameters,
        "test_nll_nats": nll,
        "test_nll_kind": kind,
        "test_bpd": None if nll is None else bits_per_dim(nll, data.dim),
        "device": str(model.device),
    }
    n_timed = 1000 if data.dim <= 16 else 100  # sequential samplers of images are slow: time 100, scale
    samples, seconds, cpu_seconds = sampling_cost(model.sample, n_timed)
    metrics.update(sample_seconds_per_1000=seconds, sample_cpu_seconds_per_1000=cpu_seconds)
    if data.truth is not None:
        if nll is not None and math.isfinite(nll):
            metrics["test_kl_gap_nats"] = nll - data.entropy
        if getattr(data.truth, "modes", None) is not None:
            more = model.sample(n_mode_samples - n_timed) if n_mode_samples > n_timed else samples[:0]
            all_samples = torch.cat([samples, more])[:n_mode_samples]
            metrics.update(mode_coverage(all_samples, data.truth.means, data.truth.std))
    if data.spec.is_image and n_image_samples:
        more = model.sample(n_image_samples - n_timed) if n_image_samples > n_timed else samples[:0]
        metrics.update(
            image_sample_quality(torch.cat([samples, more])[:n_image_samples], data, root=data.root)
        )
    return metrics
