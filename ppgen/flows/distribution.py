"""The distribution of a normalizing flow, scored in one fused pass of map and log-determinant.

``pyro.distributions.TransformedDistribution(base, [f.inv])`` scores x by inverting each inverse
transform, asking each for its log-determinant afterwards (Pyro's transforms recompute or cache it) and
rebuilding the transforms' constraints on every construction. :class:`NormalizingFlow` runs the
normalizing map f itself, step by step, each step returning its output and log-determinant together
(``call_and_ladj``, as in zuko), so a training step costs one pass forward and one backward.

References:
    | Normalizing Flows for Probabilistic Modeling and Inference (Papamakarios et al., 2021), arXiv:1912.02762
"""

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Size, Tensor
from torch.distributions import Distribution, Transform

__all__ = ["NormalizingFlow", "call_and_ladj"]


def call_and_ladj(t: Transform, x: Tensor) -> tuple[Tensor, Tensor]:
    r"""(t(x), log|det dt/dx|) through ``t.call_and_ladj`` where the transform fuses them, else in two calls.

    Arguments:
        t: a transform on vectors (event dimension 1) or an elementwise one (event dimension 0).
        x: the inputs, (*, D).

    Returns:
        The outputs (*, D) and the log-determinants (*,).
    """
    fused = getattr(t, "call_and_ladj", None)
    if fused is not None:
        return fused(x)
    y = t(x)
    ladj = t.log_abs_det_jacobian(x, y)
    return y, ladj.sum(-1) if ladj.dim() == x.dim() else ladj  # an elementwise transform's, summed


class NormalizingFlow(TorchDistribution):
    r"""x = f^{-1}(z), z ~ base, with f = t_L o ... o t_1 mapping data to the base (event shape (D,)).

    log p(x) = log base(f(x)) + sum_l log|det dt_l/dx_l|, computed in one pass through the transforms;
    sampling (and ``rsample``) runs their inverses in reverse order. Arguments are not validated here:
    the models validate their inputs at the boundary (``GenerativeModel.check_input``).

    Arguments:
        base: the base distribution, event shape (D,).
        transforms: the normalizing steps t_1, ..., t_L (data -> base), each on vectors (*, D).

    Example:
        >>> import pyro.distributions as dist
        >>> base = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
        >>> flow = NormalizingFlow(base, [dist.transforms.AffineTransform(1.0, 2.0)])  # z = 1 + 2 x
        >>> x = torch.tensor([1.0, 1.0])
        >>> float(flow.log_prob(x)), float(dist.Normal(-0.5, 0.5).log_prob(x).sum())  # x ~ N(-1/2, 1/4)
        (-9.45..., -9.45...)
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, base: Distribution, transforms: list, validate_args: bool | None = False):
        self.base, self.transforms = base, list(transforms)
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return NormalizingFlow(self.base.expand(Size(batch_shape)), self.transforms)

    def normalize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""x (*, D) -> (f(x) (*, D), log|det df/dx| (*,))."""
        ladj = 0.0
        for t in self.transforms:
            x, step = call_and_ladj(t, x)
            ladj = ladj + step
        return x, ladj

    def log_prob(self, x: Tensor) -> Tensor:
        z, ladj = self.normalize(x)
        return self.base.log_prob(z) + ladj

    def rsample(self, sample_shape=Size()) -> Tensor:
        x = self.base.rsample(sample_shape)
        for t in reversed(self.transforms):
            x = t.inv(x)
        return x

    def sample(self, sample_shape=Size()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)
