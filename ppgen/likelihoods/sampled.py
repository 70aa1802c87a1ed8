"""A distribution known through its sampler (a Markov chain), with an unnormalized or no log density.

Score-based and energy-based models are generative programs whose observation site cannot carry a
normalized density: an SMLD model has only a score, an EBM only exp(-E). ``SampledDistribution``
lets ``pyro.sample("x", d, obs=x)`` still state the program: ``sample`` runs the model's sampler
(annealed Langevin, SGLD) and ``log_prob`` returns the unnormalized log density, or raises.
"""

from collections.abc import Callable

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from ppgen.data import DataSpec
from ppgen.errors import PPGenError

__all__ = ["SampledDistribution", "support_of"]


def support_of(spec: DataSpec) -> constraints.Constraint:
    r"""The support of one example of this data kind, as an event-level constraint."""
    k = spec.num_categories
    base = (
        constraints.real
        if not k
        else constraints.boolean
        if spec.kind == "binary"
        else constraints.integer_interval(0, k - 1)
    )
    return constraints.independent(base, len(spec.event_shape))


class SampledDistribution(TorchDistribution):
    r"""p(x) given by a sampler, with ``log_prob`` the unnormalized log density or an error.

    Arguments:
        spec: the data spec (event shape and support).
        sampler: n -> n independent samples, (n, *event_shape).
        batch_shape: the batch shape (inside ``pyro.plate("data", B)``: (B,)).
        unnormalized_log_prob: x (*, *event_shape) -> (*), log p(x) + log Z; None when there is none.
        reason: the message of the error ``log_prob`` raises when there is no log density.

    Example:
        >>> d = SampledDistribution(DataSpec("continuous", (2,)), lambda n: torch.zeros(n, 2), (3,))
        >>> d.sample().shape
        torch.Size([3, 2])
    """

    arg_constraints = {}
    has_rsample = False

    def __init__(
        self,
        spec: DataSpec,
        sampler: Callable[[int], Tensor],
        batch_shape=(),
        unnormalized_log_prob: Callable[[Tensor], Tensor] | None = None,
        reason: str = "this model has no log density",
    ):
        self.spec = spec
        self.sampler = sampler
        self.unnormalized_log_prob = unnormalized_log_prob
        self.reason = reason
        super().__init__(torch.Size(batch_shape), torch.Size(spec.event_shape), validate_args=False)

    @property
    def support(self):
        return support_of(self.spec)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        x = self.sampler(shape.numel())
        return x.reshape(shape + self.event_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self.unnormalized_log_prob is None:
            raise PPGenError(self.reason)
        event = len(self.event_shape)
        flat = value.reshape(-1, *self.event_shape)
        return self.unnormalized_log_prob(flat).reshape(value.shape[: value.ndim - event])

    def expand(self, batch_shape, _instance=None):
        return SampledDistribution(
            self.spec, self.sampler, batch_shape, self.unnormalized_log_prob, self.reason
        )
