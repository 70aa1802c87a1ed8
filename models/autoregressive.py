"""The autoregressive family's base: the chain rule p(x) = prod_i p(x_i | x_<i) with shared conditionals.

A subclass writes one parallel (teacher-forced) pass, :meth:`AutoregressiveModel.conditionals`, that
returns the parameters of every conditional; the base turns it into the Pyro program, the exact
``log_prob``, a generic sequential sampler, completion of partly observed examples and the
chain-rule DAG. Training is maximum likelihood through the ELBO objective (no latents, so the loss
is exactly -log p(x)).
"""

from typing import ClassVar

import networkx as nx
import pyro
import torch
import torch.nn.functional as F
from torch import Tensor

from ppgen.base import GenerativeModel
from ppgen.errors import PPGenError
from ppgen.graph.dag import variable_names
from ppgen.likelihoods import factorized
from ppgen.likelihoods.autoregressive import AutoregressiveLikelihood

__all__ = ["AutoregressiveModel", "make_ordering", "ORDERINGS"]

ORDERINGS = ("raster", "reverse", "random")


def make_ordering(name: str, dim: int, seed: int = 0) -> Tensor:
    r"""A generation order over ``dim`` flat dimensions, (dim,) long.

    Arguments:
        name: "raster" (0, 1, ..., D-1), "reverse" (D-1, ..., 0) or "random" (a permutation drawn with
            ``seed``).
        dim: the number of dimensions D.
        seed: the seed of the random permutation.
    """
    if name == "raster":
        return torch.arange(dim)
    if name == "reverse":
        return torch.arange(dim - 1, -1, -1)
    if name == "random":
        return torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
    raise PPGenError(f"unknown ordering {name!r}; expected one of: {', '.join(ORDERINGS)}")


class AutoregressiveModel(GenerativeModel):
    r"""The chain rule, one parallel pass for every conditional: the base of FVSBN, NADE, MADE, PixelCNN...

    Subclasses implement :meth:`conditionals` and, where they differ from the defaults,
    :meth:`ordering`, :meth:`likelihood_from` and :meth:`dependencies`; they may override
    :meth:`sample` with a fast sampler. Everything else comes from here.

    Label conditioning: a subclass with ``conditionable = True`` accepts ``conditional=True`` in its
    constructor (the data spec must then name ``num_classes``) and reads ``y`` (B,) long in its
    ``conditionals``, e.g. through :meth:`label_features`. Unconditional models ignore ``y``.

    ``tiny_config``: the constructor keywords of a small instance that the shared density tests
    (tests/test_autoregressive.py) build for every registered autoregressive model.

    Categorical inputs: encode them with :meth:`one_hot`, whose straight-through gradient lets the
    shared tests find each conditional's dependencies by autograd.

    Arguments:
        spec: the data spec.
        conditional: model p(x | y) instead of p(x) (only for ``conditionable`` subclasses).

    References:
        Neural Autoregressive Distribution Estimation (Uria et al., 2016), arXiv:1605.02226.
        Pixel Recurrent Neural Networks (van den Oord et al., 2016), arXiv:1601.06759.
    """

    family = "autoregressive"
    density = "exact"
    objective = "elbo"
    completion = "chain-rule"
    conditionable: ClassVar[bool] = False
    num_masks: ClassVar[int] = 1  # orderings the model holds (MADE: its mask sets), chosen by use_mask
    tiny_config: ClassVar[
        dict
    ] = {}  # a small config for the exhaustive tests on D <= 10 (tests/test_autoregressive.py)

    def __init__(self, spec, conditional: bool = False):
        super().__init__(spec)
        if conditional and not type(self).conditionable:
            raise PPGenError(f"{self.name} has no conditional variant; expected conditional=False")
        if conditional and not spec.num_classes:
            raise PPGenError(f"{self.name}: conditional=True needs labelled data (a spec with num_classes)")
        self.conditional = bool(conditional)
        self.num_classes = spec.num_classes if conditional else None

    # --- what subclasses write ------------------------------------------------------------------
    def conditionals(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""The parameters of every p(x_i | x_<i) in one teacher-forced pass.

        Arguments:
            x: (B, *event_shape), already validated.
            y: (B,) long labels for conditional models, else None.

        Returns:
            (B, *factorized_params_shape(spec)) for the default likelihood: binary logits
            (B, *event_shape), categorical logits (B, *event_shape, K); or whatever
            :meth:`likelihood_from` reads. The parameters of dimension i may depend only on the
            dimensions in ``dependencies()[i]``.
        """
        raise NotImplementedError

    def ordering(self) -> Tensor:
        r"""The flat dimension indices in generation order, (D,) long: the buffer ``order`` if the
        subclass registers one, else raster order."""
        order = getattr(self, "order", None)
        if isinstance(order, Tensor):
            return order
        return torch.arange(self.spec.dim, device=self.device)

    def likelihood_from(self, params: Tensor) -> pyro.distributions.TorchDistribution:
        r"""The product over dimensions of the conditionals that ``params`` parameterize (event shape
        ``spec.event_shape``)."""
        return factorized(self.spec, params)

    def dependencies(self) -> dict[int, set[int]]:
        r"""Flat index -> the flat indices its conditional may depend on (default: all earlier in
        :meth:`ordering`)."""
        deps, seen = {}, set()
        for i in self.ordering().tolist():
            deps[i] = set(seen)
            seen.add(i)
        return deps

    def use_mask(self, m: int) -> None:
        r"""Makes ordering m (0 <= m < ``num_masks``) the current one; a single-ordering model has only 0."""
        if int(m) % self.num_masks:
            raise PPGenError(f"{self.name} has {self.num_masks} ordering(s); got {m}")

    # --- helpers for subclasses -----------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        for t in self.parameters():
            return t.dtype
        return torch.get_default_dtype()

    def one_hot(self, x: Tensor) -> Tensor:
        r"""Categorical values (*) -> one-hot (*, K) in the model's dtype, with a straight-through
        gradient (every slot of x_i receives d/dx_i), so autograd reveals which inputs a conditional reads."""
        k = self.spec.num_categories
        hot = F.one_hot(x.long(), k).to(self.dtype)
        if x.requires_grad:
            hot = hot + (x - x.detach()).unsqueeze(-1).to(self.dtype)
        return hot

    def label_features(self, y: Tensor) -> Tensor:
        r"""Labels (B,) long -> one-hot (B, num_classes) in the model's dtype."""
        return F.one_hot(y, self.num_classes).to(self.dtype)

    # --- the Pyro program and the density -------------------------------------------------------
    def likelihood(self, y: Tensor | None = None, n: int = 1) -> AutoregressiveLikelihood:
        r"""The model as a Pyro distribution over a batch of n examples (labels y (n,) if conditional)."""
        return AutoregressiveLikelihood(self, y, (n,))

    def model(self, x: Tensor | None = None, y: Tensor | None = None):
        n = x.shape[0] if x is not None else (y.shape[0] if y is not None else 1)
        y = self.check_labels(y, n) if x is not None or y is not None else None
        with pyro.plate("data", n):
            return pyro.sample("x", self.likelihood(y, n), obs=x)

    def training_loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""-sum log p(x): the loss of the Pyro program (it has no latent site), without tracing it."""
        return -self.log_prob(x, y).sum()

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""Exact log p(x) (or log p(x | y)): (B, *event_shape) -> (B,) nats, in one parallel pass."""
        x = self.check_input(x)
        y = self.check_labels(y, x.shape[0])
        return self.likelihood_from(self.conditionals(x, y)).log_prob(x)

    # --- sequential sampling and completion -----------------------------------------------------
    @torch.no_grad()
    def sequential(self, x: Tensor, observed: Tensor, y: Tensor | None = None) -> Tensor:
        r"""Fills the unobserved dimensions of x one at a time in :meth:`ordering`, each from its
        conditional given everything before it (one :meth:`conditionals` pass per dimension).

        Arguments:
            x: (B, *event_shape), the observed values in place.
            observed: (B, D) bool, flat.
            y: (B,) labels or None.

        Returns:
            A new (B, *event_shape) tensor.
        """
        x = x.clone()
        flat = x.view(x.shape[0], -1)
        for d in self.ordering().tolist():
            todo = ~observed[:, d]
            if not todo.any():
                continue
            draw = self.likelihood_from(self.conditionals(x, y)).sample()
            draw = draw.reshape(x.shape[0], -1)[:, d].to(x.dtype)
            flat[:, d] = torch.where(todo, draw, flat[:, d])
        return x

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        r"""n samples (n, *event_shape), drawn sequentially in :meth:`ordering`.

        Conditional models draw from p(x | y); without y, the labels are drawn uniformly.
        """
        y = self.labels_or_uniform(n, y)
        x = torch.zeros(n, *self.spec.event_shape, device=self.device, dtype=self.dtype)
        observed = torch.zeros(n, self.spec.dim, dtype=torch.bool, device=self.device)
        return self.sequential(x, observed, y)

    @torch.no_grad()
    def complete(self, x: Tensor, observed_mask: Tensor, y: Tensor | None = None) -> Tensor:
        r"""Samples the unobserved dimensions of x given the observed ones, e.g. inpaints half a digit.

        The draw is from the exact conditional p(x_unobserved | x_observed) because the observed
        dimensions must come first in :meth:`ordering` (row by row); other masks raise, since the
        chain rule's conditionals cannot condition on later dimensions.

        Arguments:
            x: (B, *event_shape); the values of unobserved dimensions are ignored.
            observed_mask: bool, (B, *event_shape) or (*event_shape); True where x is observed.
            y: (B,) labels, required by conditional models.

        Returns:
            (B, *event_shape): x with the unobserved dimensions sampled; observed ones unchanged.
        """
        shape = tuple(self.spec.event_shape)
        if not isinstance(x, Tensor) or tuple(x.shape[1:]) != shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise PPGenError(f"{self.name}: expected x of shape (B, {', '.join(map(str, shape))}), got {got}")
        mask = torch.as_tensor(observed_mask, device=x.device)
        if (
            mask.dtype != torch.bool
            or tuple(mask.shape[-len(shape) :]) != shape
            or mask.ndim not in (len(shape), len(shape) + 1)
        ):
            raise PPGenError(
                f"{self.name}: expected a bool observed_mask of shape {shape} or (B, *{shape}), "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
        mask = mask.expand_as(x)
        x = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)).to(self.device, self.dtype)
        self.check_input(x)
        observed = mask.reshape(x.shape[0], -1).to(self.device)
        in_order = observed[:, self.ordering()].to(torch.int8)
        if (in_order[:, 1:] > in_order[:, :-1]).any():
            raise PPGenError(
                f"{self.name}: the observed dimensions must come first in the model's ordering (a prefix "
                "of ordering()); got a mask that observes a later dimension but not an earlier one"
            )
        return self.sequential(x, observed, self.check_labels(y, x.shape[0]))

    # --- structure ------------------------------------------------------------------------------
    def graph(self) -> nx.DiGraph:
        r"""The chain-rule DAG under the ordering: an edge x_j -> x_i for every j in ``dependencies()[i]``."""
        names = variable_names(self.spec.dim)
        g = nx.DiGraph()
        g.add_nodes_from(names)
        for i, parents in self.dependencies().items():
            g.add_edges_from((names[j], names[i]) for j in parents)
        return g
