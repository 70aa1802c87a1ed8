"""Likelihoods: the distributions that models observe data with at site "x".

One file per idea; everything is re-exported here.
"""

from ppgen.likelihoods.factorized import factorized, factorized_params_shape
from ppgen.likelihoods.bayesnet import BayesNetLikelihood
from ppgen.likelihoods.discretized import DiscretizedGaussian
from ppgen.likelihoods.autoregressive import AutoregressiveLikelihood

__all__ = ["factorized", "factorized_params_shape", "BayesNetLikelihood", "DiscretizedGaussian", "AutoregressiveLikelihood"]
from ppgen.likelihoods.sampled import SampledDistribution, support_of  # noqa: E402
__all__ += ["SampledDistribution", "support_of"]
