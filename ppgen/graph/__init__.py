"""The graphical-model layer: discrete Bayes nets, their independencies, Pyro program and NumPyro twin.

One package, one idea a module, each using only :class:`BayesNet`'s public API:

- ``dag``: :class:`BayesNet` itself, structure (parameter counts, d-separation, Markov blankets) and CPTs;
- ``tables``: dense and sparse conditional probability tables;
- ``program``: the Pyro program, exact queries by enumeration (the reference), conditional samples, SVI,
  ``from_pyro``;
- ``elimination``: exact queries by variable elimination compiled once per form, batched evidence;
- ``numpyro_twin``: the same program in NumPyro; ``nuts``: Bayesian CPTs by NUTS (ArviZ InferenceData);
- ``likelihood``: the net as a ``TorchDistribution`` over the dimensions of one example.
"""

from ppgen.graph.dag import MAX_TABLE, BayesNet, Independence, variable_names
from ppgen.graph.likelihood import BayesNetLikelihood

__all__ = ["BayesNet", "Independence", "BayesNetLikelihood", "variable_names", "MAX_TABLE"]
