"""Closed-form maximum likelihood by counting sufficient statistics (tabular models)."""

import torch

from ppgen.inference.objective import Objective, register_objective

__all__ = ["CountingObjective"]


@register_objective("counting")
class CountingObjective(Objective):
    r"""Accumulates ``model.sufficient_statistics(x, y)`` over an epoch, then ``model.set_from_statistics``.

    The model defines both methods; the statistics are a dict of tensors that add across batches.
    The loss logged is the mean -log p(x) of each batch under the parameters of the previous epoch: from
    the batch's statistics where the model also defines ``statistics_log_likelihood(stats)`` (sum_i log
    p(x_i) = sum over cells of count * log theta, so the batch is read once), else from ``log_prob``.

    Options:
        smoothing: pseudo-count added to every count (1 = Laplace's add-one rule; default the model's).
    """

    defaults = {**Objective.defaults, "smoothing": None}

    def __init__(self, model, lr: float, **options):
        super().__init__(model, lr, **options)
        self.smoothing = self.options["smoothing"]
        self.stats = None

    @torch.no_grad()  # counting needs no gradients: no graph over the tables' log-softmax
    def step(self, x, y):
        batch = self.model.sufficient_statistics(x, y)
        from_statistics = getattr(self.model, "statistics_log_likelihood", None)
        if from_statistics is not None:
            loss = -from_statistics(batch).item() / x.shape[0]
        else:
            loss = -self.model.log_prob(x, y).mean().item()
        self.stats = batch if self.stats is None else {k: self.stats[k] + v for k, v in batch.items()}
        return {"loss": loss}

    def end_epoch(self):
        self.model.set_from_statistics(self.stats, smoothing=self.smoothing)
        self.stats = None
        return super().end_epoch()
