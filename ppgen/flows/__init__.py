"""Transforms and pieces that Pyro lacks, for the flow models (one file per idea).

Every transform here runs its forward map in the normalizing direction (data -> base); a flow model
composes them and generates with the inverse. Pyro's own transforms (couplings, autoregressive
maps, splines) are used directly by :mod:`ppgen.models.flows`.
"""

from ppgen.flows.actnorm import ActNorm
from ppgen.flows.bounded import BoundedScale
from ppgen.flows.conv1x1 import InvertibleConv1x1
from ppgen.flows.coupling2d import AffineCoupling2d, coupling_net
from ppgen.flows.dequantization import UniformDequantizer, VariationalDequantizer
from ppgen.flows.multiscale import Split
from ppgen.flows.planar import (
    ConditionalInvertiblePlanar,
    InvertiblePlanar,
    conditional_invertible_planar,
    invertible_planar,
)
from ppgen.flows.squeeze import Squeeze

__all__ = [
    "ActNorm",
    "AffineCoupling2d",
    "BoundedScale",
    "ConditionalInvertiblePlanar",
    "InvertibleConv1x1",
    "InvertiblePlanar",
    "Split",
    "Squeeze",
    "UniformDequantizer",
    "VariationalDequantizer",
    "conditional_invertible_planar",
    "coupling_net",
    "invertible_planar",
]
