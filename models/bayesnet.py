"""A discrete Bayes net over the pixels in raster order: independent, Markov of order k, or the chain rule."""

import pyro
import torch

from ppgen.base import GenerativeModel, register
from ppgen.data import DataSpec
from ppgen.errors import PPGenError
from ppgen.graph import MAX_TABLE, BayesNet, BayesNetLikelihood
from ppgen.graph.program import log_marginal

__all__ = ["BayesNetModel", "STRUCTURES"]

STRUCTURES = ("independent", "markov", "chain")


def structure_net(spec: DataSpec, structure: str, order: int, max_table: int) -> BayesNet:
    r"""The Bayes net of a structure over the spec's flattened dimensions x0 ... x{D-1}."""
    card = spec.num_categories
    if structure == "independent":
        return BayesNet.independent(spec.dim, card, max_table=max_table)
    if structure == "markov":
        return BayesNet.markov(spec.dim, order=order, card=card, max_table=max_table)
    if structure == "chain":
        return BayesNet.chain_rule(spec.dim, card, max_table=max_table)
    raise PPGenError(f"unknown structure {structure!r}; expected one of: {', '.join(STRUCTURES)}")


@register
class BayesNetModel(GenerativeModel):
    r"""p(x) = prod_i p(x_i | x_pa(i)) with a tabular CPT per pixel, pixels in raster order.

    ``structure="independent"`` has no edges (n (K-1) parameters), ``"markov"`` makes each pixel depend on
    the ``order`` previous ones ((K-1) K^order per pixel), ``"chain"`` on all previous ones (K^n - 1 in all;
    the tables that do not fit in ``max_table`` entries keep only the parent configurations seen).
    Fit in closed form by counting with add-``smoothing`` pseudo-counts (the "counting" objective); the
    "elbo" objective reaches the same CPTs by gradient ascent on the Pyro program.

    Arguments:
        spec: the data spec (binary or categorical).
        structure: "independent", "markov" or "chain".
        order: k of the Markov structure.
        smoothing: pseudo-count per CPT cell (1 = Laplace).
        max_table: the largest dense CPT, in entries.

    Example:
        >>> import ppgen
        >>> train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
        >>> m = ppgen.create("bayesnet", train, structure="markov", order=2)
        >>> _ = ppgen.fit(m, train, progress=False)
        >>> m.num_parameters
        251
        >>> round(float(-m.log_prob(test.x).mean()), 1)  # exact test NLL, nats per digit
        23.3
    """

    name = "bayesnet"
    family = "graphical"
    density = "exact"
    kinds = ("binary", "categorical")
    objective = "counting"
    fit_defaults = {"epochs": 1, "batch_size": 4096, "lr": 0.05}
    # quick mode (benchmarks/quick_presets.py): digits validation NLL 19.55, FD-digits 37 (1,000 samples)
    # to 40-59 (200), counting in 0.1 CPU s; order 9-10 fit as well but sample worse (FD 63-96)
    quick_presets = {"digits": {"config": {"order": 8, "smoothing": 0.1}, "fit": {}}}

    def __init__(
        self,
        spec,
        structure: str = "markov",
        order: int = 2,
        smoothing: float = 1.0,
        max_table: int = MAX_TABLE,
    ):
        super().__init__(spec)
        if smoothing < 0:
            raise PPGenError(f"smoothing must be >= 0, got {smoothing}")
        self.structure, self.order, self.smoothing = structure, order, float(smoothing)
        self.net = structure_net(spec, structure, order, max_table)
        self.num_data = None  # set by ``wrap``: the Dirichlet prior of SVI is spread over this many examples

    @classmethod
    def wrap(cls, net: BayesNet, smoothing: float = 0.0, num_data: int | None = None) -> "BayesNetModel":
        r"""A model around an existing net (its variables are the dimensions of (n,)-shaped data).

        With ``num_data`` set, the Pyro program adds the Dirichlet(1 + smoothing) log prior, scaled by
        B / num_data per batch, so SVI reaches the same MAP as counting with ``smoothing``.
        """
        cards = set(net.cards.values())
        kind = "binary" if cards == {2} else f"categorical:{max(cards)}"
        model = cls(DataSpec(kind, (len(net.variables),)), structure="independent", smoothing=smoothing)
        model.net, model.num_data = net, num_data
        return model

    @property
    def num_parameters(self) -> int:
        r"""The free parameters of the tabular CPTs, sum_i (K - 1) prod_{pa(i)} K (a Python int;
        K^D - 1 for "chain")."""
        return self.net.num_parameters()

    def likelihood(self) -> BayesNetLikelihood:
        return BayesNetLikelihood(self.net, self.spec.event_shape)

    def model(self, x=None, y=None):
        n = 1 if x is None else x.shape[0]
        if self.num_data and self.smoothing and x is not None:
            pyro.factor("cpt_prior", self.smoothing * self.net.log_prior() * n / self.num_data)
        with pyro.plate("data", n):
            return pyro.sample("x", self.likelihood(), obs=x)

    def log_prob(self, x, y=None):
        return self.likelihood().log_prob(self.check_input(x))

    @torch.no_grad()
    def sample(self, n, y=None):
        return self.likelihood().sample((n,))

    # --- missing entries and completion ----------------------------------------------------------
    def observed_log_prob(self, x, num_samples=1):
        r"""Exact log p(x_o), (B,): the missing entries (NaN) enumerated out by Pyro (``obs_mask``, variable
        elimination; see :func:`ppgen.graph.program.log_marginal`). Differentiable in the dense CPTs; None
        for a net with sparse tables (the chain rule over many pixels), which enumeration cannot sum."""
        if not all(self.net.is_dense(v) for v in self.net.variables):
            return None
        flat = x.reshape(x.shape[0], -1)
        observed = ~torch.isnan(flat)
        return log_marginal(self.net, torch.nan_to_num(flat).long(), observed)

    @torch.no_grad()
    def conditional_sample(self, x, hidden, y=None):
        r"""Exact: x_h drawn given the observed pixels as evidence (forward filtering, backward sampling),
        one net query per distinct mask; log p(x_o) is exact where the observed set is closed under
        parents."""
        net, n = self.net, x.shape[0]
        flat, hid = x.reshape(n, -1).long(), hidden.reshape(n, -1)
        out = flat.clone()
        groups = {}
        for i, row in enumerate(hid):
            groups.setdefault(tuple(row.tolist()), []).append(i)
        for pattern, rows in groups.items():
            rows = torch.tensor(rows)
            observed = [v for v, h in zip(net.variables, pattern) if not h]
            evidence = {v: flat[rows, net.variables.index(v)] for v in observed}
            draw = net.sample(len(rows), evidence=evidence)  # (r, D), exact given the evidence
            out[rows] = torch.where(hid[rows], draw, flat[rows])
        log_po = None
        closed = all(
            set(net.parents(v)) <= {u for u, h in zip(net.variables, row) if not h}
            for row in hid.tolist()
            for v, h in zip(net.variables, row)
            if not h
        )
        if closed:  # observed set closed under parents: log p(x_o) is the sum of its CPT terms
            cols = {v: flat[:, j] for j, v in enumerate(net.variables)}
            log_po = torch.zeros(n, dtype=torch.float64)
            for j, v in enumerate(net.variables):
                logits = net.table_logits(v, [cols[u] for u in net.parents(v)]).expand(n, -1)
                term = logits.log_softmax(-1).gather(-1, cols[v][:, None])[:, 0].double()
                log_po += torch.where(hid[:, j], torch.zeros_like(term), term)
        info = {
            "method": "exact (Bayes-net evidence)",
            "log_p_observed": log_po,
            "log_p_observed_kind": "exact",
        }
        return out.to(x.dtype).reshape(x.shape), info

    # --- closed-form maximum likelihood (inference/counting.py) ---------------------------------
    def sufficient_statistics(self, x, y=None):
        return self.net.sufficient_statistics(x.reshape(x.shape[0], -1))

    def statistics_log_likelihood(self, stats):
        return self.net.statistics_log_likelihood(stats)

    @torch.no_grad()
    def set_from_statistics(self, stats, smoothing=None):
        self.net.set_from_statistics(stats, self.smoothing if smoothing is None else smoothing)

    def graph(self):
        return self.net.graph
