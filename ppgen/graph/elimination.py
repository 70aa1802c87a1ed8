"""Exact queries compiled once: variable elimination as one contraction of the CPTs, its path found once.

A query p(targets | evidence) needs only the ancestors of the targets and the evidence (the other
variables sum to one). Over them the joint is a product of CPTs, one tensor (*parent cards, card) per
variable; fixing the evidence indexes each table at the observed values (one batch axis for a batch of
evidence rows) and summing out the rest is one einsum. Its elimination order (min-weight greedy) is
found once per (targets, evidence variables) and kept with the net as a list of pairwise
``torch.einsum`` steps; the tables are converted to float64 probabilities once per change of the CPTs.
Each later query of that form, and every row of a batch of evidence, costs the contractions alone.
(Pyro's path, opt_einsum's search over the enumerated trace's factors, is rebuilt at every query.)

This is the fast path of :meth:`~ppgen.graph.BayesNet.query`; ``ppgen.graph.program.query`` (the Pyro
program enumerated, contracted in log space) is the reference it is tested against.

References:
    Koller and Friedman, Probabilistic Graphical Models (2009), ch. 9 (variable elimination).
    Smith and Gray, opt_einsum - A Python package for optimizing contraction order for einsum-like
    expressions (2018), JOSS 3(26), 753 (the pairwise contraction lists followed here).
"""

import string

import torch
from torch import Tensor

from ppgen.errors import PPGenError
from ppgen.graph.tables import DenseCPTs

__all__ = ["CompiledQuery", "compiled_query", "contraction_steps", "probability_tables", "query"]

LETTERS = string.ascii_letters


BATCH = None  # the symbol of the batch of evidence rows


def ancestral_set(bn, names: tuple) -> list:
    r"""The variables in ``names`` and all their ancestors, in variable order (the ancestor sets of every
    variable are found once per net and kept with its compiled queries)."""
    if "ancestors" not in bn._query_plans:
        found = {}
        for v in bn.variables:  # topological: parents first
            found[v] = frozenset(bn.parents(v)).union(*(found[u] for u in bn.parents(v)))
        bn._query_plans["ancestors"] = found
        bn._query_plans["dense"] = {v for v in bn.variables if bn.is_dense(v)}
    found = bn._query_plans["ancestors"]
    keep = set(names).union(*(found[v] for v in names))
    return [v for v in bn.variables if v in keep]


def _einsum(inputs: list, output: tuple) -> str:
    letters = {}
    for s in [*(u for term in inputs for u in term), *output]:
        letters.setdefault(s, LETTERS[len(letters)])  # torch.einsum takes letters only
    return (
        ",".join("".join(letters[u] for u in t) for t in inputs) + "->" + "".join(letters[u] for u in output)
    )


def contraction_steps(terms: list, sizes: dict, output: tuple) -> list:
    r"""A variable-elimination order for a product of factors, as pairwise contractions.

    Repeatedly picks the variable whose elimination makes the smallest factor (the product of the sizes of
    every variable in the factors that hold it: the min-weight heuristic), contracts those factors two at
    a time (smallest first), summing out every variable that no other factor and not the output holds.
    Operands are popped at the given positions (descending) and the result appended, as in opt_einsum's
    contraction lists (its path search costs milliseconds a query form; this one a fraction of that).

    Arguments:
        terms: each factor's variables (any hashable symbols), in its axis order.
        sizes: {symbol: size}.
        output: the symbols of the result, in order.

    Returns:
        [(positions, equation)]: pop these operands, ``torch.einsum(equation, *popped)``, append.
    """
    terms, steps, out = [tuple(t) for t in terms], [], set(output)

    def weight(symbols) -> int:
        w = 1
        for u in symbols:
            w *= sizes[u]
        return w

    def contract(positions: list) -> None:
        positions = sorted(positions, reverse=True)
        inputs = [terms[i] for i in positions]
        rest = [t for k, t in enumerate(terms) if k not in positions]
        if rest:  # keep what the output or another factor holds
            needed = out.union(*rest)
            result = tuple(u for u in dict.fromkeys(u for t in inputs for u in t) if u in needed)
        else:  # the last step writes the output in its order
            result = tuple(output)
        for i in positions:
            terms.pop(i)
        terms.append(result)
        steps.append((positions, _einsum(inputs, result)))

    while True:
        hidden = list(dict.fromkeys(u for t in terms for u in t if u not in out))  # deterministic order
        if not hidden:
            break
        v = min(hidden, key=lambda u: weight(set().union(*(t for t in terms if u in t))))
        while True:  # a hidden variable is summed out with the last pair of factors that hold it
            holders = sorted((k for k, t in enumerate(terms) if v in t), key=lambda k: weight(terms[k]))
            if not holders:
                break
            contract(holders[:2])
    while len(terms) > 1:  # factors over the output variables alone: multiply, smallest first
        contract(sorted(range(len(terms)), key=lambda k: weight(terms[k]))[:2])
    if terms[0] != tuple(output):
        contract([0])
    return steps


def probability_tables(bn) -> tuple[dict, set]:
    r"""{name: (*parent cards, card) float64 CPT} of every dense table, and the names whose table has a
    zero entry; cached on the net until the tables change (an in-place change, a new dtype or device)."""
    dense = [t for t in bn.tables._modules.values() if isinstance(t, DenseCPTs)]
    stamp = [(p._version, p.data_ptr(), p.dtype) for p in (t._parameters["logits"] for t in dense)]
    cache = bn._query_cache
    if cache.get("stamp") != stamp:
        cache.clear()
        probs = {id(t): t.logits.detach().double().softmax(-1) for t in dense}
        tables, zeros = {}, set()
        for v, (i, slot) in bn._where.items():
            if id(bn.tables[i]) in probs:
                tables[v] = probs[id(bn.tables[i])][slot].reshape(
                    *(bn.cards[u] for u in bn.parents(v)), bn.cards[v]
                )
                if not bool((tables[v] > 0).all()):
                    zeros.add(v)
        cache.update(stamp=stamp, tables=tables, zeros=zeros)
    return cache["tables"], cache["zeros"]


class CompiledQuery:
    r"""p(targets | evidence variables) of one net as a fixed sequence of pairwise contractions.

    Over the ancestors of the targets and the evidence, each CPT is indexed at the evidence (its evidence
    axes moved to the front); a CPT over evidence variables alone is a constant per query, which cancels
    when the answer is normalized and is only checked for zero. The remaining factors are contracted
    pairwise in the order :func:`contraction_steps` found (once, at compile time).

    Arguments:
        bn: the :class:`~ppgen.graph.BayesNet` (its structure; the CPT values are read at call time).
        targets: the target names, in the order of the answer's axes.
        observed: the evidence names, in the order their values are passed.
        batched: evidence values are (B,) tensors (an axis B in front of the answer), else ints.
    """

    def __init__(self, bn, targets: tuple, observed: tuple, batched: bool):
        variables = ancestral_set(bn, targets + observed)
        self.targets, self.observed, self.batched = targets, observed, batched
        position = {v: i for i, v in enumerate(observed)}
        self.factors, self.constants, terms = [], [], []
        for v in variables:
            axes = [*bn.parents(v), v]
            fixed = [u for u in axes if u in position]
            free = [u for u in axes if u not in position]
            perm = [axes.index(u) for u in fixed + free]  # evidence axes first, then indexed away
            entry = (v, perm if perm != sorted(perm) else None, tuple(position[u] for u in fixed))
            if not free:
                self.constants.append(entry)
                continue
            self.factors.append(entry)
            terms.append(((BATCH,) if fixed and batched else ()) + tuple(free))
        self.has_batch = any(BATCH in t for t in terms)  # else only constants depend on the evidence
        sizes = {**bn.cards, BATCH: 64}
        self.steps = contraction_steps(terms, sizes, ((BATCH,) if self.has_batch else ()) + targets)

    @staticmethod
    def _indexed(tables: dict, entry, values):
        v, perm, fixed = entry
        f = tables[v] if perm is None else tables[v].permute(perm)
        return f[tuple(values[i] for i in fixed)] if fixed else f  # ints select, (B,) tensors gather

    def __call__(self, tables: dict, zeros: set, values: list) -> Tensor:
        r"""The unnormalized p(targets | evidence), up to a positive constant per evidence row:
        (*target cards) for ``values`` ints, (B, *target cards) for (B,) long tensors; 0 where the
        evidence is impossible."""
        operands = [self._indexed(tables, entry, values) for entry in self.factors]
        for positions, step in self.steps:
            picked = [operands.pop(i) for i in positions]
            operands.append(torch.einsum(step, *picked))
        (out,) = operands
        if self.batched and not self.has_batch:
            out = out.expand(len(values[0]), *out.shape)
        for entry in self.constants:
            if entry[0] in zeros:  # the constant factor of an evidence configuration may be zero
                c = self._indexed(tables, entry, values)
                out = out * (c > 0).reshape(c.shape + (1,) * (out.dim() - c.dim())).to(out)
        return out


def compiled_query(bn, targets: tuple, observed: tuple, batched: bool) -> CompiledQuery | None:
    r"""The :class:`CompiledQuery` of (targets, evidence variables), compiled on first use and cached on the
    net (it depends on the structure only); None when a table it needs is stored sparse."""
    key = (targets, observed, batched)
    if key not in bn._query_plans:
        variables = ancestral_set(bn, targets + observed)
        dense = bn._query_plans["dense"].issuperset(variables)
        bn._query_plans[key] = CompiledQuery(bn, targets, observed, batched) if dense else None
    return bn._query_plans[key]


def _reference(bn, targets: list, evidence: dict, rows: int | None) -> Tensor:
    r"""The enumerated Pyro program's answer (``ppgen.graph.program.query``): (*target cards) for single
    values (rows None), else one evidence row at a time, (rows, *target cards)."""
    from ppgen.graph.program import query as enumerate_query

    if rows is None:
        return enumerate_query(bn, targets, evidence)
    return torch.stack(
        [enumerate_query(bn, targets, {v: value[r] for v, value in evidence.items()}) for r in range(rows)]
    )


def _single_values(bn, evidence: dict) -> dict | None:
    r"""{name: int} when every value is one integer in range (the common case, checked without torch),
    None when some value is a tensor or array with dimensions (a batch: ``check_evidence`` validates)."""
    out = {}
    for v, value in evidence.items():
        if getattr(value, "ndim", 0) != 0:
            return None
        if isinstance(value, float) and not value.is_integer():
            raise PPGenError(f"evidence {v}={value!r} outside [0, {bn.cards[v]})")
        try:
            k = int(value)
        except (TypeError, ValueError):
            raise PPGenError(f"evidence {v}={value!r} is not a category index") from None
        if not (k == value and 0 <= k < bn.cards[v]):
            raise PPGenError(f"evidence {v}={value!r} outside [0, {bn.cards[v]})")
        out[v] = k
    return out


@torch.no_grad()
def query(bn, targets, evidence: dict | None = None) -> Tensor:
    r"""Exact p(targets | evidence) by compiled variable elimination, for one or a batch of evidence rows.

    Arguments:
        bn: the :class:`~ppgen.graph.BayesNet`.
        targets: a name or a list of names.
        evidence: {name: value}; every value an int (one query) or all of them (B,) integer tensors
            (B queries of the same variables, answered in one contraction).

    Returns:
        (*target cards) probabilities summing to 1, or (B, *target cards) for batched evidence, in the
        net's dtype.

    Raises:
        PPGenError: unknown or repeated variables, a target also observed, values outside their range,
            ragged batches, or evidence of probability zero.

    Example:
        >>> from ppgen.graph import BayesNet
        >>> bn = BayesNet([("rain", "wet")], {"rain": 2, "wet": 2}).double()
        >>> bn.set_table("rain", torch.tensor([[0.8, 0.2]]))
        >>> bn.set_table("wet", torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
        >>> query(bn, "rain", {"wet": 1})  # 0.2 * 0.8 / (0.8 * 0.1 + 0.2 * 0.8)
        tensor([0.3333, 0.6667], dtype=torch.float64)
        >>> query(bn, "rain", {"wet": torch.tensor([0, 1, 1])}).shape  # three queries in one contraction
        torch.Size([3, 2])
    """
    bn.require_tables()
    targets = [targets] if isinstance(targets, str) else list(targets)
    evidence = dict(evidence or {})
    for v in targets + list(evidence):
        if v not in bn.column:
            bn.check_variable(v)
    if not targets or len(set(targets)) != len(targets) or set(targets) & set(evidence):
        raise PPGenError("query needs distinct targets that are not also evidence")
    observed = tuple(v for v in bn.variables if v in evidence)  # column order: one plan per set of names
    single = _single_values(bn, evidence)
    if single is not None:
        rows, values = None, [single[v] for v in observed]
    else:
        evidence = bn.check_evidence(evidence)
        shapes = {tuple(evidence[v].shape) for v in observed}
        if len(shapes) > 1 or len(next(iter(shapes))) != 1:
            raise PPGenError(
                "query evidence must be single values, or (B,) tensors of one length B (a batch of "
                "queries); got " + ", ".join(f"{v} {tuple(evidence[v].shape)}" for v in observed)
            )
        rows, values = next(iter(shapes))[0], [evidence[v] for v in observed]
    plan = compiled_query(bn, tuple(targets), observed, rows is not None)
    if plan is None:  # a sparse table on the way: enumerate the Pyro program
        return _reference(bn, targets, dict(zip(observed, values)), rows).to(bn.dtype)
    joint = plan(*probability_tables(bn), values)  # (*target cards) or (B, *target cards)
    if rows is None:
        total = float(joint.sum())
        if not total > 0:  # zero, or underflow of the float64 products: the log-space reference decides
            return _reference(bn, targets, dict(zip(observed, values)), None).to(bn.dtype)
        return (joint / total).to(bn.dtype)
    total = joint.reshape(rows, -1).sum(-1).reshape(rows, *[1] * len(targets))
    lost = (total <= 0).reshape(rows)
    if lost.any():
        joint, total = joint.clone(), total.clone()
        joint[lost] = _reference(bn, targets, {v: t[lost] for v, t in zip(observed, values)}, int(lost.sum()))
        total[lost] = 1.0
    return (joint / total).to(bn.dtype)
