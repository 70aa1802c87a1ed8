"""The NumPyro twin of a Bayes net: the same program in JAX, for log densities and NUTS.

``numpyro_program(bn)`` mirrors ``ppgen.graph.program.program``: one ``numpyro.sample`` site per variable,
in topological order, inside a plate "data", drawn from ``Categorical(logits=cpt[row of its parents])``.
With ``bayesian=True`` the CPTs are themselves random, each row Dirichlet(concentration), which is what
``ppgen.graph.nuts`` fits by NUTS.

JAX computes in float32 unless ``jax_enable_x64`` is set; this module never changes that global flag.
"""

import math

import jax.numpy as jnp
import numpyro
import numpyro.distributions as ndist

from ppgen.errors import PPGenError
from ppgen.graph.tables import strides

__all__ = ["numpyro_program", "cpt_arrays"]


def cpt_arrays(bn) -> dict:
    r"""{name: (P, K) log-probability table as a JAX array} of a net whose CPTs are all dense."""
    bn.require_tables()
    if not all(bn.is_dense(v) for v in bn.variables):
        raise PPGenError("the NumPyro twin needs every CPT dense; this net has sparse tables")
    return {v: jnp.asarray(bn.table_log_probs(v).detach().cpu().numpy()) for v in bn.variables}


def numpyro_program(bn, bayesian: bool = False, concentration: float = 1.0):
    r"""The NumPyro program of ``bn``: ``model(x=None, n=1)`` with x (B, num variables) integer values.

    Arguments:
        bn: the :class:`~ppgen.graph.BayesNet` (dense CPTs).
        bayesian: make every CPT row a Dirichlet(concentration) random variable, site "cpt_<name>" (P, K).
        concentration: the Dirichlet's concentration per cell.

    Returns:
        a callable NumPyro model; it returns {name: values}.
    """
    tables = None if bayesian else cpt_arrays(bn)
    variables, cards = list(bn.variables), dict(bn.cards)
    parents = {v: [bn.column[u] for u in bn.parents(v)] for v in variables}
    steps = {v: strides([cards[u] for u in bn.parents(v)]) for v in variables}

    def model(x=None, n: int = 1):
        size = x.shape[0] if x is not None else n
        values = {}
        logits = {}
        for v in variables:
            if bayesian:
                rows = math.prod(cards[variables[c]] for c in parents[v])
                theta = numpyro.sample(
                    f"cpt_{v}", ndist.Dirichlet(jnp.full((rows, cards[v]), concentration)).to_event(1)
                )
                logits[v] = jnp.log(theta)
            else:
                logits[v] = tables[v]
        with numpyro.plate("data", size):
            for i, v in enumerate(variables):
                row = sum(
                    (s * values[variables[c]] for s, c in zip(steps[v], parents[v])),
                    start=jnp.zeros((), jnp.int32),
                )
                obs = None if x is None else x[:, i]
                values[v] = numpyro.sample(v, ndist.Categorical(logits=logits[v][row]), obs=obs)
        return values

    return model
