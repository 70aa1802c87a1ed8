"""Conditional probability tables of a discrete Bayes net: dense tables in groups, sparse counts beyond.

A variable with K states whose parents take P joint configurations has a (P, K) table; a parent
configuration's row is its mixed-radix index (the last parent varies fastest). Variables whose tables
have the same shape share one tensor, so that ``log_prob`` and counting loop over groups, not over
variables. A table larger than ``max_table`` entries (the chain rule over many pixels has 2^(n-1) rows
for its last pixel) is kept sparse: the counts of the parent configurations seen in the data, with
add-alpha smoothing (uniform where nothing was seen). Both are exactly the maximum-likelihood (or
Dirichlet-smoothed) estimate; only the dense one is a free parameter for SVI and enumeration.
"""

import math

import torch
from torch import Tensor, nn

__all__ = ["DenseCPTs", "SparseCPT", "SparseCounts", "build_tables", "strides", "row_index"]


def strides(cards) -> list[int]:
    r"""Mixed-radix strides of parent cardinalities (last parent fastest), as Python ints."""
    out, s = [], 1
    for c in reversed(list(cards)):
        out.append(s)
        s *= int(c)
    return out[::-1]


def row_index(values: list[Tensor], steps: list[int], like: Tensor) -> Tensor:
    r"""The table row of parent values (broadcastable integer tensors); a 0-dim zero without parents."""
    if not values:
        return torch.zeros((), dtype=torch.long, device=like.device)
    return sum(s * v.long() for s, v in zip(steps, values))


def normalize_counts(counts: Tensor, smoothing: float) -> Tensor:
    r"""(..., K) counts -> (..., K) probabilities (c + a) / (n + K a); uniform where n + K a = 0."""
    c = counts + smoothing
    total = c.sum(-1, keepdim=True)
    uniform = torch.full_like(c, 1.0 / c.shape[-1])
    return torch.where(total > 0, c / total.clamp_min(1e-300), uniform)


class DenseCPTs(nn.Module):
    r"""The tables of G variables with K states each and the same parent cardinalities.

    Arguments:
        nodes: the G variables' columns in the data.
        parents: (G, k) the parents' columns, in the order of ``parent_cards``.
        parent_cards: the k parent cardinalities.
        card: K.
    """

    def __init__(self, nodes: list[int], parents: list[list[int]], parent_cards: tuple, card: int):
        super().__init__()
        self.parent_cards = tuple(int(c) for c in parent_cards)
        self.card = int(card)
        self.steps = strides(self.parent_cards)
        self.rows = math.prod(self.parent_cards)
        g, k = len(nodes), len(self.parent_cards)
        self.register_buffer("nodes", torch.tensor(nodes, dtype=torch.long), persistent=False)
        self.register_buffer(
            "parents", torch.tensor(parents, dtype=torch.long).reshape(g, k), persistent=False
        )
        self.register_buffer(
            "offsets", torch.arange(g, dtype=torch.long) * (self.rows * self.card), persistent=False
        )
        self.logits = nn.Parameter(torch.zeros(g, self.rows, self.card))  # (G, P, K)

    def table_logits(self, slot: int, values: list[Tensor]) -> Tensor:
        r"""log p(x_v | parents = values) for the variable in ``slot``: (*batch, K), normalized."""
        return self.logits[slot].log_softmax(-1)[row_index(values, self.steps, self.logits)]

    def cells(self, columns: Tensor) -> Tensor:
        r"""columns: (n, B) long, one row per variable -> (G, B) the flat index of each variable's (parent
        configuration, value) cell in the (G, P, K) tables: (g P + row) K + x_v, one index that both
        scoring and counting read. Rows of ``columns`` are gathered whole (a column gather of (B, n) data
        costs 2-3x as much)."""
        cell = self.offsets[:, None] + columns.index_select(0, self.nodes)  # (G, B): g P K + x_v
        for j, step in enumerate(self.steps):  # a loop over the k parent slots, never a (G, k, B) copy
            cell += columns.index_select(0, self.parents[:, j]) * (step * self.card)
        return cell

    def log_probs(self, columns: Tensor) -> Tensor:
        r"""columns: (n, B) long -> (B, G) log p(x_v | x_pa(v))."""
        return self.logits.log_softmax(-1).reshape(-1)[self.cells(columns)].T

    def counts(self, columns: Tensor) -> Tensor:
        r"""columns: (n, B) long -> (G, P, K) float64 counts of (parent configuration, value) pairs."""
        n = len(self.nodes) * self.rows * self.card
        counts = torch.bincount(self.cells(columns).reshape(-1), minlength=n)
        return counts.reshape(self.logits.shape).double()

    def log_likelihood(self, counts: Tensor) -> Tensor:
        r"""sum over the examples counted in (G, P, K) ``counts`` of their log p(x_v | x_pa(v)):
        sum c log theta (0 log 0 = 0: a cell that was not seen adds nothing whatever its probability)."""
        logp = self.logits.log_softmax(-1).to(counts.dtype)
        return torch.where(counts > 0, counts * logp, torch.zeros_like(logp)).sum()

    @torch.no_grad()
    def set_counts(self, counts: Tensor, smoothing: float) -> None:
        self.logits.copy_(normalize_counts(counts, smoothing).log().to(self.logits.dtype))

    def log_prior(self) -> Tensor:
        r"""Sum of log theta over all entries: the log kernel of a flat Dirichlet's extra pseudo-counts."""
        return self.logits.log_softmax(-1).sum()


class SparseCounts:
    r"""Counts of the parent configurations seen: ``keys`` (M, k) long, unique, and ``counts`` (M, K).

    Adding two merges them, so they accumulate across batches like tensors.
    """

    def __init__(self, keys: Tensor, counts: Tensor):
        self.keys, self.counts = keys, counts

    @classmethod
    def of(cls, parents: Tensor, values: Tensor, card: int) -> "SparseCounts":
        r"""parents: (N, k) configurations, values: (N,) states."""
        keys, inverse = torch.unique(parents, dim=0, return_inverse=True)
        counts = torch.zeros(len(keys), card, dtype=torch.float64, device=parents.device)
        counts.index_put_((inverse, values), torch.ones_like(values, dtype=torch.float64), accumulate=True)
        return cls(keys, counts)

    def __add__(self, other: "SparseCounts") -> "SparseCounts":
        keys, inverse = torch.unique(torch.cat([self.keys, other.keys]), dim=0, return_inverse=True)
        counts = torch.zeros(len(keys), self.counts.shape[1], dtype=torch.float64, device=keys.device)
        counts.index_add_(0, inverse, torch.cat([self.counts, other.counts]))
        return SparseCounts(keys, counts)


class SparseCPT(nn.Module):
    r"""The table of one variable with too many parent configurations to store: counts of those seen.

    p(x_v = j | pa) = (c(pa, j) + a) / (c(pa) + K a), uniform for a configuration with no counts and a = 0.

    Arguments:
        node: the variable's column.
        parents: the parents' columns.
        card: K.
    """

    def __init__(self, node: int, parents: list[int], card: int):
        super().__init__()
        self.card = int(card)
        self.register_buffer("nodes", torch.tensor([node], dtype=torch.long), persistent=False)
        self.register_buffer("parents", torch.tensor([parents], dtype=torch.long), persistent=False)
        self.register_buffer("keys", torch.zeros(0, len(parents), dtype=torch.long))
        self.register_buffer("table", torch.zeros(0, self.card, dtype=torch.float64))
        self.register_buffer("smoothing", torch.zeros((), dtype=torch.float64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the number of configurations seen is data-dependent: take the stored sizes
        for name in ("keys", "table"):
            if prefix + name in state_dict:
                setattr(
                    self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device)
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def lookup(self, configurations: Tensor) -> Tensor:
        r"""(N, k) parent configurations -> (N,) their row in ``keys``, or -1 if never seen."""
        m = len(self.keys)
        if m == 0:
            return torch.full(configurations.shape[:1], -1, dtype=torch.long, device=configurations.device)
        _, inverse = torch.unique(torch.cat([self.keys, configurations]), dim=0, return_inverse=True)
        position = torch.full((m + len(configurations),), -1, dtype=torch.long, device=configurations.device)
        position[inverse[:m]] = torch.arange(m, device=configurations.device)
        return position[inverse[m:]]

    def table_logits(self, slot: int, values: list[Tensor]) -> Tensor:
        values = torch.broadcast_tensors(*[v.long() for v in values])
        shape = values[0].shape
        rows = self.lookup(torch.stack(values, -1).reshape(-1, len(values)))
        counts = torch.zeros(len(rows), self.card, dtype=self.table.dtype, device=rows.device)
        seen = rows >= 0
        counts[seen] = self.table[rows[seen]]
        return normalize_counts(counts, float(self.smoothing)).log().reshape(*shape, self.card)

    def log_probs(self, columns: Tensor) -> Tensor:
        r"""columns: (n, B) long, one row per variable -> (B, 1) log p(x_v | x_pa(v))."""
        logp = self.table_logits(0, list(columns.index_select(0, self.parents[0])))  # (B, K)
        return logp.gather(-1, columns.index_select(0, self.nodes).T)

    def counts(self, columns: Tensor) -> SparseCounts:
        r"""columns: (n, B) long -> the counts of the parent configurations seen and their values."""
        return SparseCounts.of(columns.index_select(0, self.parents[0]).T, columns[self.nodes[0]], self.card)

    def log_likelihood(self, counts: SparseCounts) -> Tensor:
        r"""sum over the examples counted in ``counts`` of log p(x_v | x_pa(v)): sum c log theta."""
        logp = self.table_logits(0, list(counts.keys.unbind(-1)))  # (M, K)
        return torch.where(counts.counts > 0, counts.counts * logp, torch.zeros_like(logp)).sum()

    @torch.no_grad()
    def set_counts(self, counts: SparseCounts, smoothing: float) -> None:
        self.keys, self.table = counts.keys.clone(), counts.counts.clone()
        self.smoothing.fill_(smoothing)


def build_tables(variables: list, parents: dict, cards: dict, max_table: int) -> tuple[nn.ModuleList, dict]:
    r"""The CPTs of a net: dense tables grouped by shape, sparse ones for tables over ``max_table`` entries.

    Arguments:
        variables: the names in column order (topological).
        parents: {name: parent names in column order}.
        cards: {name: cardinality}.
        max_table: the largest dense table, in entries.

    Returns:
        the tables, and {name: (index of its table, its slot in that table)}.
    """
    column = {v: i for i, v in enumerate(variables)}
    tables, where, groups = nn.ModuleList(), {}, {}
    for v in variables:
        parent_cards = tuple(cards[u] for u in parents[v])
        if math.prod(parent_cards) * cards[v] <= max_table:
            groups.setdefault((parent_cards, cards[v]), []).append(v)
        else:
            where[v] = (len(tables), 0)
            tables.append(SparseCPT(column[v], [column[u] for u in parents[v]], cards[v]))
    for (parent_cards, card), members in groups.items():
        for slot, v in enumerate(members):
            where[v] = (len(tables), slot)
        cols = [column[v] for v in members]
        tables.append(DenseCPTs(cols, [[column[u] for u in parents[v]] for v in members], parent_cards, card))
    return tables, where
