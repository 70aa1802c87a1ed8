"""The graphical-model layer: discrete Bayes nets on networkx, their parameter counts and independencies.

A :class:`BayesNet` is a DAG of discrete variables with cardinalities and a conditional probability
table (CPT) per variable. Its structure answers the questions of the lecture notes (how many parameters,
which variables are independent given which) and compiles to a Pyro program (``ppgen.graph.program``) and
a NumPyro one (``ppgen.graph.numpyro_twin``) for exact likelihoods, samples, fitting and queries.

References:
    Pearl, Probabilistic Reasoning in Intelligent Systems (1988), ch. 3 (d-separation).
    Koller and Friedman, Probabilistic Graphical Models (2009), ch. 3 (Bayes nets, I-maps).

Example:
    >>> from ppgen.graph import BayesNet
    >>> BayesNet.independent(784).num_parameters(), BayesNet.markov(784).num_parameters()
    (784, 1567)
    >>> BayesNet.chain_rule(30).num_parameters() == 2**30 - 1
    True
    >>> bn = BayesNet([("rain", "wet"), ("sprinkler", "wet")], {"rain": 2, "sprinkler": 2, "wet": 2})
    >>> bn.is_independent("rain", "sprinkler"), bn.is_independent("rain", "sprinkler", given="wet")
    (True, False)
"""

import itertools
import math
from typing import NamedTuple

import networkx as nx
import torch
from torch import Tensor, nn

from ppgen.errors import PPGenError
from ppgen.graph import elimination
from ppgen.graph import program as graph_pyro
from ppgen.graph.tables import DenseCPTs, build_tables
from ppgen.validation import values_checked

__all__ = ["BayesNet", "Independence", "variable_names"]

MAX_TABLE = 2**16


def variable_names(n: int) -> list[str]:
    r"""The names of n pixel variables, x0 ... x{n-1} (raster order), as every model's ``graph()`` uses."""
    return [f"x{i}" for i in range(n)]


class Independence(NamedTuple):
    r"""The statement x ⊥ y | given."""

    x: str
    y: str
    given: frozenset

    def __str__(self) -> str:
        cond = f" | {', '.join(sorted(self.given))}" if self.given else ""
        return f"{self.x} ⊥ {self.y}{cond}"


def _names(arg) -> set:
    if arg is None:
        return set()
    return {arg} if isinstance(arg, str) else set(arg)


class BayesNet(nn.Module):
    r"""A Bayes net over discrete variables: p(x) = prod_v p(x_v | x_pa(v)), one CPT per variable.

    Variables are ordered topologically, ties broken by the order they were given in; that order is the
    column order of every data tensor (B, n). CPTs start uniform; a table of more than ``max_table``
    entries is stored sparse (counts of the parent configurations seen, see ``ppgen.graph.tables``).

    Arguments:
        edges: (parent, child) pairs of variable names.
        cards: the cardinality of each variable, a dict (its keys also give variables without edges)
            or one int for every variable; None for a non-discrete variable (structure only).
        max_table: the largest dense CPT, in entries.
        tables: build the CPTs (False: structure only, e.g. to count the parameters of a huge net).

    Raises:
        PPGenError: the edges form a cycle, name an unknown variable, or a cardinality is not a positive int.
    """

    def __init__(self, edges=(), cards: dict | int = 2, max_table: int = MAX_TABLE, tables: bool = True):
        super().__init__()
        edges = [tuple(e) for e in edges]
        if any(len(e) != 2 for e in edges):
            raise PPGenError("edges must be (parent, child) pairs")
        if isinstance(cards, dict):
            nodes = list(cards)
            unknown = {v for e in edges for v in e} - set(cards)
            if unknown:
                raise PPGenError(
                    f"edges name variables without a cardinality: {', '.join(sorted(map(str, unknown)))}"
                )
        else:
            nodes = list(dict.fromkeys(v for e in edges for v in e))
            cards = {v: cards for v in nodes}
        for v, c in cards.items():
            if not isinstance(v, str):
                raise PPGenError(f"variable names must be strings, got {v!r}")
            if c is not None and (not isinstance(c, int) or isinstance(c, bool) or c < 1):
                raise PPGenError(f"cardinality of {v!r} must be a positive int (or None), got {c!r}")
        g = nx.DiGraph()
        g.add_nodes_from((v, {"card": cards[v]}) for v in nodes)
        g.add_edges_from(edges)
        if not nx.is_directed_acyclic_graph(g):
            cycle = [u for u, _ in nx.find_cycle(g)]
            raise PPGenError(
                "a Bayes net needs a DAG, but the edges form the cycle "
                f"{' -> '.join(map(str, cycle + cycle[:1]))}"
            )
        position = {v: i for i, v in enumerate(nodes)}
        self.graph = g
        self.variables: list[str] = list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
        self.column = {v: i for i, v in enumerate(self.variables)}
        self.cards = {v: cards[v] for v in self.variables}
        self._parents = {
            v: tuple(sorted(g.predecessors(v), key=self.column.__getitem__)) for v in self.variables
        }
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        self.tables, self._where = nn.ModuleList(), {}  # the CPTs; variable -> (table, slot)
        self._query_plans, self._query_cache = {}, {}  # compiled queries; their float64 tables
        if tables and all(c is not None for c in self.cards.values()):
            self.tables, self._where = build_tables(self.variables, self._parents, self.cards, max_table)

    # --- constructors ------------------------------------------------------------------------------
    @classmethod
    def independent(cls, n: int, card: int = 2, **kwargs) -> "BayesNet":
        r"""n variables with no edges: n (card - 1) parameters."""
        return cls.markov(n, order=0, card=card, **kwargs)

    @classmethod
    def markov(cls, n: int, order: int = 1, card: int = 2, **kwargs) -> "BayesNet":
        r"""x_i depends on the ``order`` previous variables, AR(k): 2n - 1 parameters for binary order 1."""
        n, order = _count(n, "n", 1), _count(order, "order", 0)
        names = variable_names(n)
        edges = [(names[i - j], names[i]) for i in range(n) for j in range(1, min(order, i) + 1)]
        return cls(edges, {v: card for v in names}, **kwargs)

    @classmethod
    def chain_rule(cls, n: int, card: int = 2, **kwargs) -> "BayesNet":
        r"""Every variable depends on all earlier ones (the full chain rule): card^n - 1 parameters."""
        return cls.markov(n, order=n - 1 if isinstance(n, int) else n, card=card, **kwargs)

    @classmethod
    def from_pyro(cls, model, *args, **kwargs) -> "BayesNet":
        r"""The structure of a Pyro program: its sample sites and their prior dependencies.

        Read from ``pyro.infer.inspect.get_dependencies``; a site's cardinality is the size of its
        distribution's enumerable support (None for continuous sites); plates are kept as a node attribute.
        """
        return graph_pyro.from_pyro(cls, model, *args, **kwargs)

    # --- structure -----------------------------------------------------------------------------------
    def parents(self, v: str) -> tuple:
        r"""The parents of v, in variable order (the order of the CPT's parent axes)."""
        return self._parents[self.check_variable(v)]

    def ordering(self) -> list[str]:
        r"""The variables in topological order: the column order of data and the order of sampling."""
        return list(self.variables)

    def num_parameters(self) -> int:
        r"""Free parameters of the tabular CPTs, sum_v (card_v - 1) prod_{u in pa(v)} card_u (an int)."""
        if any(c is None for c in self.cards.values()):
            raise PPGenError("num_parameters needs every variable discrete; some cardinalities are None")
        return sum(
            (self.cards[v] - 1) * math.prod(self.cards[u] for u in self._parents[v]) for v in self.variables
        )

    def is_independent(self, x, y, given=None) -> bool:
        r"""Whether x ⊥ y | given holds in every distribution of this structure (d-separation).

        Arguments:
            x, y, given: variable names or collections of names.
        """
        xs, ys, zs = (set(map(self.check_variable, _names(a))) for a in (x, y, given))
        if not xs or not ys:
            raise PPGenError("is_independent needs non-empty x and y")
        if xs & ys or (xs | ys) & zs:
            raise PPGenError("x, y and given must be disjoint sets of variables")
        return nx.is_d_separator(self.graph, xs, ys, zs)

    def markov_blanket(self, v: str) -> set:
        r"""Markov blanket of v (parents, children, children's other parents): v is independent given it."""
        v = self.check_variable(v)
        children = set(self.graph.successors(v))
        spouses = {u for c in children for u in self.graph.predecessors(c)}
        return (set(self.graph.predecessors(v)) | children | spouses) - {v}

    def independencies(self, max_given: int | None = None) -> list[Independence]:
        r"""Every pairwise statement x ⊥ y | Z (Z a set of other variables, |Z| <= max_given) that holds."""
        n = len(self.variables)
        limit = n - 2 if max_given is None else min(max_given, n - 2)
        total = math.comb(n, 2) * sum(math.comb(n - 2, k) for k in range(limit + 1))
        if total > 200_000:
            raise PPGenError(f"{total} candidate statements; pass a smaller max_given")
        out = []
        for x, y in itertools.combinations(self.variables, 2):
            rest = [v for v in self.variables if v not in (x, y)]
            for k in range(limit + 1):
                for z in itertools.combinations(rest, k):
                    if nx.is_d_separator(self.graph, {x}, {y}, set(z)):
                        out.append(Independence(x, y, frozenset(z)))
        return out

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def check_variable(self, v: str) -> str:
        r"""Returns ``v`` if it names a variable of the net, else raises a :class:`PPGenError`."""
        if v not in self.column:
            raise PPGenError(
                f"unknown variable {v!r}; the net has "
                f"{', '.join(self.variables[:10])}{' ...' if len(self.variables) > 10 else ''}"
            )
        return v

    # --- tables --------------------------------------------------------------------------------------
    def require_tables(self) -> None:
        if not self._where:
            raise PPGenError(
                "this net describes structure only (built with tables=False, or a variable is not discrete)"
            )

    def table_logits(self, v: str, values: list[Tensor]) -> Tensor:
        r"""log p(x_v | parents = values) for broadcastable parent values: (*batch, card_v)."""
        t, slot = self._where[v]
        return self.tables[t].table_logits(slot, values).to(self._anchor.dtype)

    def is_dense(self, v: str) -> bool:
        return isinstance(self.tables[self._where[v][0]], DenseCPTs)

    def table_log_probs(self, v: str) -> Tensor:
        r"""Dense CPT of v as log-probabilities (rows, card_v), rows in mixed radix over ``parents(v)``."""
        self.require_tables()
        if not self.is_dense(self.check_variable(v)):
            raise PPGenError(f"the CPT of {v} is stored sparse")
        t, slot = self._where[v]
        return self.tables[t].logits[slot].log_softmax(-1)

    @torch.no_grad()
    def set_table(self, v: str, probs: Tensor) -> None:
        r"""Sets the dense CPT of v to ``probs``, (rows, card_v) as in :meth:`table_log_probs`."""
        table = self.table_log_probs(v)
        if tuple(probs.shape) != tuple(table.shape):
            raise PPGenError(f"the CPT of {v} has shape {tuple(table.shape)}, got {tuple(probs.shape)}")
        t, slot = self._where[v]
        self.tables[t].logits[slot] = probs.log().to(table)
        self._query_cache.clear()

    def cpt(self, v: str) -> Tensor:
        r"""The CPT of v as probabilities, shaped (*parent cards, card_v) in the order of ``parents(v)``."""
        self.require_tables()
        v = self.check_variable(v)
        if not self.is_dense(v):
            raise PPGenError(
                f"the CPT of {v} has {math.prod(self.cards[u] for u in self._parents[v])} rows "
                "and is stored sparse"
            )
        t, slot = self._where[v]
        return (
            self.tables[t]
            .logits[slot]
            .softmax(-1)
            .reshape(*(self.cards[u] for u in self._parents[v]), self.cards[v])
        )

    @torch.no_grad()
    def randomize(self, concentration: float = 1.0) -> "BayesNet":
        r"""Draws every dense CPT row from a symmetric Dirichlet(concentration) (torch's global RNG)."""
        self.require_tables()
        for t in self.tables:
            if isinstance(t, DenseCPTs):
                gamma = torch.distributions.Gamma(torch.full_like(t.logits, concentration), 1.0).sample()
                t.logits.copy_((gamma / gamma.sum(-1, keepdim=True)).clamp_min(1e-30).log())
        return self

    def check_values(self, x) -> Tensor:
        r"""Validates (B, n) values, each an integer in [0, card) of its column (the shape always, the values
        while :func:`~ppgen.validation.values_checked`); returns them as long."""
        self.require_tables()
        n = len(self.variables)
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != n:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise PPGenError(
                f"expected values of shape (B, {n}) in the order {self.variables[:3]}..., got {got}"
            )
        if not values_checked():  # inside ppgen.fit after its first step (ppgen/validation.py)
            return x.long()
        if x.is_floating_point() and not (torch.isfinite(x).all() and (x == x.round()).all()):
            raise PPGenError("values must be finite integers (category indices)")
        cards = torch.tensor([self.cards[v] for v in self.variables], device=x.device)
        if ((x < 0) | (x >= cards)).any():
            raise PPGenError("values must lie in [0, card) of their variable")
        return x.long()

    def check_evidence(self, evidence) -> dict:
        out = {}
        for v, value in (evidence or {}).items():
            self.check_variable(v)
            value = torch.as_tensor(value, device=self._anchor.device)
            if (
                value.is_floating_point()
                and not (value == value.round()).all()
                or ((value < 0) | (value >= self.cards[v])).any()
            ):
                raise PPGenError(f"evidence {v}={value.tolist()} outside [0, {self.cards[v]})")
            out[v] = value.long()
        return out

    # --- probabilities (compiled through graph_pyro) -------------------------------------------------
    def log_prob(self, x: Tensor) -> Tensor:
        r"""Exact log p(x), x: (B, n) in ``ordering()`` -> (B,) nats."""
        x = self.check_values(x)
        columns = x.T.contiguous()  # (n, B): the tables gather whole rows
        total = torch.zeros(x.shape[0], dtype=self._anchor.dtype, device=x.device)
        for t in self.tables:
            total = total + t.log_probs(columns).sum(-1).to(total.dtype)
        return total

    def model(self, x: Tensor | None = None, n: int | None = None, evidence: dict | None = None) -> dict:
        r"""The Pyro program: every variable sampled in topological order from its CPT (see ``program``)."""
        return graph_pyro.program(self, x=x, n=n, evidence=evidence)

    def sample(self, n: int, evidence: dict | None = None) -> Tensor:
        r"""n samples (n, num variables), long; given ``evidence`` (name -> value), exact conditional ones."""
        return graph_pyro.sample(self, n, evidence)

    def query(self, targets, evidence: dict | None = None, method: str = "compiled") -> Tensor:
        r"""Exact p(targets | evidence), shaped (*target cards), or (B, *target cards) for evidence given as
        (B,) tensors (B queries in one contraction).

        Arguments:
            targets: a name or a list of names.
            evidence: {name: int} observed values, or {name: (B,) integer tensor} for a batch.
            method: "compiled" (variable elimination compiled once per targets and evidence variables,
                ``ppgen.graph.elimination``) or "enumeration" (the Pyro program enumerated and contracted,
                ``ppgen.graph.program.query``: the reference; single evidence values only).
        """
        if method == "compiled":
            return elimination.query(self, targets, evidence)
        if method == "enumeration":
            return graph_pyro.query(self, targets, evidence)
        raise PPGenError(f"unknown query method {method!r}; expected 'compiled' or 'enumeration'")

    def log_prior(self) -> Tensor:
        r"""sum of log theta over the dense CPT entries (a flat Dirichlet's extra pseudo-count, once each)."""
        return sum(t.log_prior() for t in self.tables if isinstance(t, DenseCPTs))

    # --- fitting -------------------------------------------------------------------------------------
    def sufficient_statistics(self, x: Tensor) -> dict:
        r"""Counts of (parent configuration, value) per table; they add across batches (8192 rows a pass)."""
        x = self.check_values(x)
        if x.shape[0] == 0:
            raise PPGenError("fitting needs at least one example")
        stats = None
        for chunk in x.split(8192):
            columns = chunk.T.contiguous()  # (n, B): the tables gather whole rows
            batch = {f"t{i}": t.counts(columns) for i, t in enumerate(self.tables)}
            stats = batch if stats is None else {k: stats[k] + v for k, v in batch.items()}
        return stats

    def statistics_log_likelihood(self, stats: dict) -> Tensor:
        r"""sum_i log p(x_i) over the examples that ``sufficient_statistics`` counted in ``stats``, under the
        current CPTs: sum over cells of count * log theta (float64 scalar), without the examples."""
        return sum(t.log_likelihood(stats[f"t{i}"]).double() for i, t in enumerate(self.tables))

    def set_from_statistics(self, stats: dict, smoothing: float = 0.0) -> None:
        r"""Sets each CPT to (count + smoothing) / (total + card * smoothing); unseen rows at 0: uniform."""
        for i, t in enumerate(self.tables):
            t.set_counts(stats[f"t{i}"], smoothing)
        self._query_cache.clear()

    def fit(self, x: Tensor, method: str = "counting", smoothing: float = 0.0, **options) -> "BayesNet":
        r"""Fits the CPTs to (N, n) values by maximum likelihood, or the Dirichlet(1 + smoothing) MAP.

        Arguments:
            x: the data, (N, n) in ``ordering()``.
            method: "counting" (closed form) or "svi" (gradient ascent on the Pyro program's log joint,
                ``Trace_ELBO().differentiable_loss`` with an empty guide; options: ``steps``, ``lr``).
                Both give the same CPTs.
            smoothing: pseudo-count added to every cell.
        """
        if smoothing < 0:
            raise PPGenError(f"smoothing must be >= 0, got {smoothing}")
        if method == "counting":
            self.set_from_statistics(self.sufficient_statistics(x), smoothing)
        elif method == "svi":
            graph_pyro.fit_svi(self, self.check_values(x), smoothing, **options)
        else:
            raise PPGenError(f"unknown fit method {method!r}; expected 'counting' or 'svi'")
        return self

    def extra_repr(self) -> str:
        return f"variables={len(self.variables)}, edges={self.graph.number_of_edges()}"


def _count(k, what: str, low: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < low:
        raise PPGenError(f"{what} must be an int >= {low}, got {k!r}")
    return k
