"""Custom Pyro distributions: the likelihoods models observe data with at site "x", and priors.

One file per idea; everything is re-exported here (the Bayes-net likelihood lives in ``ppgen.graph``).
"""

from ppgen.likelihoods.autoregressive import AutoregressiveLikelihood
from ppgen.likelihoods.discretized import DiscretizedGaussian
from ppgen.likelihoods.factorized import factorized, factorized_params_shape, pairwise_log_prob
from ppgen.likelihoods.sampled import SampledDistribution, support_of
from ppgen.likelihoods.vamp_prior import DiagonalNormalMixture, VampPrior

__all__ = [
    "factorized",
    "factorized_params_shape",
    "pairwise_log_prob",
    "DiscretizedGaussian",
    "AutoregressiveLikelihood",
    "SampledDistribution",
    "support_of",
    "DiagonalNormalMixture",
    "VampPrior",
]
