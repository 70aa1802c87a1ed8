"""Transforms and pieces that Pyro lacks, for the flow models (one file per idea).

Every transform here runs its forward map in the normalizing direction (data -> base); a flow model
composes them and generates with the inverse. Pyro's own transforms (couplings, autoregressive
affine maps) are used directly by :mod:`ppgen.models.flows`; the spline step is ours (a fused
log-determinant), and :class:`NormalizingFlow` scores a flow in one pass.
"""

from ppgen.flows.actnorm import ActNorm
from ppgen.flows.bounded import BoundedScale
from ppgen.flows.conv1x1 import InvertibleConv1x1
from ppgen.flows.coupling2d import AffineCoupling2d, coupling_net
from ppgen.flows.dequantization import UniformDequantizer, VariationalDequantizer
from ppgen.flows.distribution import NormalizingFlow, call_and_ladj
from ppgen.flows.multiscale import Split
from ppgen.flows.planar import (
    ConditionalInvertiblePlanar,
    InvertiblePlanar,
    conditional_invertible_planar,
    invertible_planar,
)
from ppgen.flows.spline import (
    AutoregressiveSpline,
    ConditionalAutoregressiveSpline,
    ConditionedAutoregressiveSpline,
    rational_quadratic_spline,
    spline_knots,
)
from ppgen.flows.squeeze import Squeeze

__all__ = [
    "ActNorm",
    "AffineCoupling2d",
    "AutoregressiveSpline",
    "BoundedScale",
    "ConditionalAutoregressiveSpline",
    "ConditionalInvertiblePlanar",
    "ConditionedAutoregressiveSpline",
    "InvertibleConv1x1",
    "InvertiblePlanar",
    "NormalizingFlow",
    "Split",
    "Squeeze",
    "UniformDequantizer",
    "VariationalDequantizer",
    "call_and_ladj",
    "conditional_invertible_planar",
    "coupling_net",
    "invertible_planar",
    "rational_quadratic_spline",
    "spline_knots",
]
