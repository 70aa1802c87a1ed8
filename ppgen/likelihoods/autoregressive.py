"""The chain-rule likelihood p(x) = prod_i p(x_i | x_<i) of an autoregressive model as a Pyro distribution."""

import math

import pyro.distributions as dist
import torch
from torch import Tensor
from torch.distributions import constraints

__all__ = ["AutoregressiveLikelihood", "support_of"]


def support_of(spec) -> constraints.Constraint:
    r"""The support of one example of a data spec: {0, 1}, {0, ..., K-1} or the reals, per dimension."""
    if spec.kind == "binary":
        base = constraints.boolean
    elif spec.base_kind == "categorical":
        base = constraints.integer_interval(0, spec.num_categories - 1)
    else:
        base = constraints.real
    return constraints.independent(base, len(spec.event_shape))


class AutoregressiveLikelihood(dist.TorchDistribution):
    r"""The exact likelihood of an :class:`~ppgen.models.autoregressive.AutoregressiveModel`.

    ``log_prob`` is the sum of the model's conditionals in one parallel (teacher-forced) pass and
    ``sample`` runs the model's sequential sampler, so ``pyro.sample("x", AutoregressiveLikelihood(m),
    obs=x)``
    is the model. It holds no parameters of its own: it delegates to the model.

    Arguments:
        model: the autoregressive model.
        y: labels (*batch_shape,), long, for conditional models; else None.
        batch_shape: the batch shape, e.g. (B,) inside a plate of size B.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.data import DataSpec
        >>> m = ppgen.create("fvsbn", DataSpec("binary", (4,)))
        >>> d = AutoregressiveLikelihood(m, batch_shape=(3,))
        >>> d.sample().shape, d.log_prob(torch.zeros(3, 4)).shape
        (torch.Size([3, 4]), torch.Size([3]))
    """

    arg_constraints = {}
    has_rsample = False

    def __init__(self, model, y: Tensor | None = None, batch_shape=(), validate_args=None):
        self.ar_model = model
        self.y = y
        super().__init__(
            torch.Size(batch_shape), torch.Size(model.spec.event_shape), validate_args=validate_args
        )

    @property
    def support(self):
        return support_of(self.ar_model.spec)

    def _flat_labels(self, shape: torch.Size) -> Tensor | None:
        if self.y is None:
            return None
        return self.y.expand(shape).reshape(-1)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""value: (*sample, *batch, *event_shape) -> (*sample, *batch) nats."""
        n = len(self.event_shape)
        shape = value.shape[: value.ndim - n]
        flat = value.reshape(-1, *self.event_shape)
        return self.ar_model.log_prob(flat, self._flat_labels(shape)).reshape(shape)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> Tensor:
        r"""(*sample_shape, *batch_shape, *event_shape) draws from the model's sequential sampler."""
        shape = torch.Size(sample_shape) + self.batch_shape
        x = self.ar_model.sample(math.prod(shape), self._flat_labels(shape))
        return x.reshape(*shape, *self.event_shape)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        y = None if self.y is None else self.y.expand(batch_shape)
        return AutoregressiveLikelihood(self.ar_model, y, batch_shape, validate_args=False)
