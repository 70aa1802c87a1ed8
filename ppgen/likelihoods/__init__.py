"""Likelihoods: the distributions that models observe data with at site "x".

One file per idea; everything is re-exported here.
"""

from ppgen.likelihoods.factorized import factorized, factorized_params_shape

__all__ = ["factorized", "factorized_params_shape"]
