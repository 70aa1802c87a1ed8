"""The model protocol every ppgen model follows, and the registry that names them."""

import functools
import importlib
import inspect
import numbers
from typing import ClassVar

import networkx as nx
import pyro
import torch
from torch import Tensor, nn

from ppgen.data import Dataset, DataSpec
from ppgen.errors import PPGenError
from ppgen.validation import values_checked

__all__ = [
    "GenerativeModel",
    "register",
    "create",
    "get",
    "model_names",
    "data_regime",
    "REGIMES",
    "REGISTRY",
]

FAMILIES = ("graphical", "autoregressive", "flow", "latent-variable", "diffusion", "energy", "adversarial")
DENSITIES = ("exact", "lower-bound", "unnormalized", "implicit")
REGISTRY: dict[str, type] = {}
# the kinds of data a model's defaults are chosen for (see GenerativeModel.data_defaults)
REGIMES = ("points", "binary-images", "gray-images")
# what a constructor raises for options it cannot build from (shown as "bad config" in one line)
CONFIG_ERRORS = (TypeError, ValueError, RuntimeError, AssertionError, IndexError, KeyError, ZeroDivisionError)


class GenerativeModel(nn.Module):
    r"""A generative model written as a Pyro program.

    Subclasses set the class variables, build their networks in ``__init__(spec, **config)`` and write
    ``model`` (the Pyro program, observing data at site "x") and, for latent-variable models, ``guide``.
    Every tensor a model needs is a parameter or a buffer, so ``.to(device)`` moves all of it.

    Class variables:
        name: the registry key, e.g. "nade".
        family: one of "graphical", "autoregressive", "flow", "latent-variable", "diffusion", "energy",
            "adversarial".
        density: "exact" (log p(x)), "lower-bound" (ELBO <= log p(x)), "unnormalized" (-E(x)) or "implicit".
        kinds: the data kinds the model accepts, among "binary", "categorical", "continuous".
        images_only: the model needs image data, event_shape (C, H, W).
        conditional: the model accepts labels y, modelling p(x | y).
        objective: the name of the training objective in ``ppgen.inference`` ("elbo", "counting", ...).
        latent_site: the latent sample site that posterior analysis reads (None: no latent posterior).
        fit_defaults: defaults of :func:`ppgen.fit`'s options (``epochs``, ``batch_size``, ``lr``,
            ``ema_decay``) and of the objective's (e.g. ``lr_decay``, ``clip_norm``, ``d_steps``).
        data_defaults: per data regime (:data:`REGIMES`, see :func:`data_regime`), the default config and
            fit options, ``{"binary-images": {"config": {...}, "fit": {...}}}``, laid over the constructor's
            defaults and ``fit_defaults`` by :func:`create` (see :meth:`defaults_for`). A regime the dict
            does not name keeps the class defaults.
        quick_presets: per data set, the config and fit options of quick mode (see :meth:`quick_preset`).
        completion: the completion (inpainting) sampler of ``ppgen.inference.tasks.complete`` that fits the
            model's structure, and so the methods the model declares for it: "chain-rule" (``conditionals``,
            ``sequential``, ``ordering``, ``likelihood_from``, ``num_masks``/``use_mask``), "latent-mcmc"
            (``posterior(x, y)``, ``prior()``, ``likelihood(z, y)``), "latent-fit" (``generator``,
            ``generate``, ``latent_dim``, ``levels``, ``standardize``), "replacement" (a DDPM: ``schedule``,
            ``eps``, ``timesteps_for``, ``to_model_space``, ``finish``), "langevin" (``prepare``,
            ``standardize`` and ``score_u(u, sigma)`` with ``sigmas``, or ``energy_u(u)`` with
            ``sampler``). None (the default): :meth:`conditional_sample` where the model gives one, else
            Gibbs sampling on ``log_prob`` for discrete data with a density.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    density: ClassVar[str]
    kinds: ClassVar[tuple] = ("binary", "categorical", "continuous")
    images_only: ClassVar[bool] = False
    conditional: ClassVar[bool] = False
    objective: ClassVar[str] = "elbo"
    latent_site: ClassVar[str | None] = None
    fit_defaults: ClassVar[dict] = {"epochs": 50, "batch_size": 128, "lr": 1e-3}
    data_defaults: ClassVar[dict] = {}
    quick_presets: ClassVar[dict] = {}
    completion: ClassVar[str | None] = None

    @classmethod
    def defaults_for(cls, spec: DataSpec) -> dict:
        r"""The defaults :func:`create` uses for data of this spec: ``{"regime": name or None, "config":
        constructor options, "fit": fit_defaults}``.

        ``regime`` is :func:`data_regime` of the spec when ``data_defaults`` names it, else None (the class
        defaults: constructor defaults and ``fit_defaults``); ``fit`` is ``fit_defaults`` updated by the
        regime's fit options.

        Example:
            >>> from ppgen.data import DataSpec
            >>> get("independent").defaults_for(DataSpec("binary", (1, 3, 3)))["regime"] is None
            True
        """
        regime = data_regime(spec)
        chosen = cls.data_defaults.get(regime)
        if chosen is None:
            return {"regime": None, "config": {}, "fit": dict(cls.fit_defaults)}
        return {
            "regime": regime,
            "config": dict(chosen.get("config", {})),
            "fit": {**cls.fit_defaults, **chosen.get("fit", {})},
        }

    @classmethod
    def quick_preset(cls, data_name: str) -> dict | None:
        r"""The quick-mode preset for a data set: ``{"config": model kwargs, "fit": ppgen.fit options}``.

        ``quick_presets`` maps a data-set name (or "*" for any other) to such a dict; None means the
        model has no quick preset for these data (``ppgen compare --quick`` then leaves it out).
        """
        preset = cls.quick_presets.get(data_name, cls.quick_presets.get("*"))
        return (
            None
            if preset is None
            else {"config": dict(preset.get("config", {})), "fit": dict(preset.get("fit", {}))}
        )

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "sample" in cls.__dict__:  # every model's sample(n, ...) checks n at the boundary
            cls.sample = _checked_sample(cls.__dict__["sample"])

    def __init__(self, spec: DataSpec):
        super().__init__()
        self.spec = spec
        self.config: dict = {}
        # set by create(): the regime whose defaults were used (None: the class defaults) and the
        # fit options' defaults for these data, which shadow the class's ``fit_defaults``
        self.defaults_regime: str | None = None
        self.fit_defaults = dict(type(self).fit_defaults)

    # --- the Pyro program -------------------------------------------------------------------
    def model(self, x: Tensor | None = None, y: Tensor | None = None):
        r"""The generative program; observes ``x`` (B, *event_shape) at site "x" inside a plate "data"."""
        raise NotImplementedError

    def guide(self, x: Tensor | None = None, y: Tensor | None = None):
        r"""The guide for the latent sites (nothing for fully observed models)."""

    def elbo(self) -> pyro.infer.ELBO:
        r"""The Pyro objective whose ``differentiable_loss`` trains this model (see inference/elbo.py)."""
        return pyro.infer.Trace_ELBO()

    def training_loss(self, x: Tensor, y: Tensor | None = None) -> Tensor | None:
        r"""``elbo().differentiable_loss(model, guide, x, y)`` computed without tracing the Pyro program, or
        None (the default): then the ELBO objective traces it. A model that defines it returns the same
        value, gradients and random draws as the traced loss (``tests/test_training_path.py`` checks every
        one); x is a training batch that :func:`ppgen.fit` has already validated."""
        return None

    def initialize(self, data) -> None:
        r"""Data-dependent initialization from the training split, called by :func:`ppgen.fit` before the
        first epoch of a fresh fit (not when resuming). Default: nothing."""

    # --- densities and samples ----------------------------------------------------------------
    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""(B, *event_shape) -> (B,) nats; exact, a bound or unnormalized according to ``density``."""
        raise NotImplementedError

    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        r"""n samples, (n, *event_shape), on the model's device."""
        raise NotImplementedError

    def evaluation_log_prob(
        self, x: Tensor, y: Tensor | None = None, num_samples: int = 1000
    ) -> tuple[Tensor, str] | None:
        r"""The test log-likelihood that gets reported, and its kind ("exact", "iwae-K", "elbo", ...).

        Returns None where the model has no density to report (implicit, or unnormalized without a partition
        function).
        """
        if self.density == "exact":
            return self.log_prob(x, y), "exact"
        if self.density == "lower-bound":
            estimate = self.estimate_log_prob(x, num_samples, y=y)
            if estimate is not None:
                return estimate, f"iwae-{num_samples}"
            return self.log_prob(x, y), "elbo"
        return None

    # --- optional parts of the protocol (declared here, overridden where a model has them) --------------
    def estimate_log_prob(self, x: Tensor, num_samples: int = 1000, y: Tensor | None = None) -> Tensor | None:
        r"""An importance-sampled (IWAE-K) estimate of log p(x), (B,) nats, with K = ``num_samples``.

        Lower-bound models with a guide override it; the default None says that the model has no
        estimate beyond :meth:`log_prob`.
        """
        return None

    def posterior_params(self, x: Tensor, y: Tensor | None = None) -> dict:
        r"""The guide's parameters of q(z | x), e.g. ``{"loc": (B, L), "scale": (B, L)}``, for models with
        a latent posterior to inspect (the VAE family).

        Raises:
            PPGenError: the model has no latent posterior (the default).
        """
        raise PPGenError(f"{self.name} has no latent posterior to inspect (it needs a latent-variable model)")

    def conditional_sample(
        self, x: Tensor, hidden: Tensor, y: Tensor | None = None
    ) -> tuple[Tensor, dict] | None:
        r"""An exact draw of the hidden entries given the observed ones, x_h ~ p(x_h | x_o).

        Models with a closed-form conditional override it (Bayes nets by evidence, finite mixtures by the
        component posterior); the default None leaves completion to the sampler named by ``completion``.

        Arguments:
            x: (B, *event_shape) on the model's device; hidden entries hold zeros.
            hidden: (B, *event_shape) bool, True = to fill in.
            y: (B,) labels of a conditional model, else None.

        Returns:
            the completed (B, *event_shape) tensor (observed entries unchanged) and {"method": how,
            "log_p_observed": log p(x_o) (B,) or None, "log_p_observed_kind": "exact" or None}; or None.
        """
        return None

    def observed_log_prob(self, x: Tensor, num_samples: int = 1) -> Tensor | None:
        r"""log p(x_o) of each example, the missing entries (NaN in x) marginalized: (B,) nats.

        Exact for exact models, a bound for lower-bound ones (e.g. MIWAE with K = ``num_samples``); its
        gradient trains the model on data with missing entries (``ppgen.inference.tasks.missing``). The
        default None says that the model cannot marginalize missing entries.

        Arguments:
            x: (B, *event_shape), NaN where an entry is missing.
            num_samples: K of an importance-sampled bound (unused by exact models).
        """
        return None

    def discriminate(self, x: Tensor, y: Tensor | None = None) -> Tensor | None:
        r"""A discriminator's or critic's logit, (B,), higher for data-like inputs (adversarial models);
        the default None says that the model has none."""
        return None

    def graph(self) -> nx.DiGraph:
        r"""The model's dependency DAG over its variables."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its graph")

    # --- helpers --------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def check_input(self, x: Tensor) -> Tensor:
        r"""Validates x at the boundary: a tensor on the model's device, shaped (B, *event_shape) with
        B >= 1, finite, inside the data kind's support (the values only while
        :func:`~ppgen.validation.values_checked`); returns it as floating point."""
        shape = tuple(self.spec.event_shape)
        if not isinstance(x, Tensor) or x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise PPGenError(f"{self.name}: expected x of shape (B, {', '.join(map(str, shape))}), got {got}")
        if not x.is_floating_point():  # integer or bool data: the values count, as float32
            x = x.float()
        if x.shape[0] == 0:
            raise PPGenError(f"{self.name}: x is an empty batch; expected at least one example")
        if x.device != self.device:
            raise PPGenError(
                f"{self.name}: x is on {x.device} but the model is on {self.device}; pass x.to(model.device)"
            )
        if not values_checked():  # inside ppgen.fit after its first step: the data were checked once
            return x
        if not torch.isfinite(x).all():
            raise PPGenError(f"{self.name}: x contains NaN or infinite values")
        k = self.spec.num_categories
        if k and not ((x >= 0) & (x < k) & (x == x.round())).all():
            raise PPGenError(
                f"{self.name}: x must hold integers in [0, {k}) for data kind {self.spec.kind!r}"
            )
        return x

    def check_labels(self, y: Tensor | None, n: int) -> Tensor | None:
        r"""The labels a conditional model needs, validated: (n,) long in [0, num_classes) on the model's
        device; None for an unconditional model (whatever ``y`` is).

        Raises:
            PPGenError: a conditional model got no labels, or labels of the wrong shape or range.
        """
        if not self.conditional:
            return None
        k = self.spec.num_classes
        if y is None:
            raise PPGenError(f"{self.name} is conditional: expected labels y of shape ({n},)")
        y = torch.as_tensor(y, device=self.device)
        integral = not y.is_floating_point() or bool((y == y.round()).all())
        if y.shape != (n,) or not integral or bool(((y < 0) | (y >= k)).any()):
            raise PPGenError(
                f"{self.name}: expected integer labels y in [0, {k}) of shape ({n},), "
                f"got shape {tuple(y.shape)}"
            )
        return y.long()

    def labels_or_uniform(self, n: int, y: Tensor | None = None) -> Tensor | None:
        r"""Labels for n samples: ``y`` validated, or drawn uniformly over the classes when a conditional
        model gets none; None for an unconditional model."""
        if self.conditional and y is None:
            return torch.randint(self.spec.num_classes, (n,), device=self.device)
        return self.check_labels(y, n)

    def check_data(self, data: Dataset) -> None:
        r"""Checks that a data set is one this model was built for: the same kind and event shape, labels
        where a conditional model needs them, and values the model accepts (:meth:`check_input` on the
        first 1,000 examples).

        Raises:
            PPGenError: one line saying what the model expects and what the data are.
        """
        if data.spec.kind != self.spec.kind or tuple(data.event_shape) != tuple(self.spec.event_shape):
            raise PPGenError(
                f"{self.name} was built for {self.spec.kind} data of shape {tuple(self.spec.event_shape)}; "
                f"{data.name} is {data.kind} of shape {tuple(data.event_shape)}"
            )
        if self.conditional and data.y is None and self.spec.num_classes:
            raise PPGenError(f"{self.name} is conditional and needs labels y; {data.name} has none")
        self.check_input(data.x[:1000])

    def pyro_log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        r"""log p(x) summed over the batch, read from a trace of the Pyro program (fully observed models)."""
        trace = pyro.poutine.trace(self.model).get_trace(x, y)
        return trace.log_prob_sum()


def _checked_sample(sample):
    @functools.wraps(sample)
    def checked(self, n, *args, **kwargs):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise PPGenError(f"{self.name}.sample: n must be a positive integer, got {n!r}")
        return sample(self, int(n), *args, **kwargs)

    return checked


def register(cls: type) -> type:
    r"""Class decorator: adds a :class:`GenerativeModel` subclass to the registry under ``cls.name``."""
    if cls.family not in FAMILIES or cls.density not in DENSITIES:
        raise TypeError(f"{cls.__name__}: family {cls.family!r} or density {cls.density!r} unknown")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise TypeError(f"model name {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def _load_models() -> None:
    importlib.import_module("ppgen.models")


def model_names() -> list[str]:
    r"""The registered names, grouped by family in the order of ``FAMILIES`` (graphical first)."""
    _load_models()
    return sorted(REGISTRY, key=lambda name: FAMILIES.index(REGISTRY[name].family))


def get(name: str) -> type:
    r"""The model class registered under ``name``."""
    _load_models()
    if name not in REGISTRY:
        raise PPGenError(f"unknown model {name!r}; expected one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def data_regime(spec: DataSpec) -> str:
    r"""The kind of data a model's defaults are chosen for: "points" (vectors, e.g. 2-D continuous data),
    "binary-images" (binary (C, H, W) images) or "gray-images" (categorical or continuous images).

    Example:
        >>> from ppgen.data import DataSpec
        >>> [data_regime(DataSpec(k, s)) for k, s in [("continuous", (2,)), ("binary", (1, 8, 8)),
        ...                                          ("categorical:17", (1, 8, 8))]]
        ['points', 'binary-images', 'gray-images']
    """
    if not spec.is_image:
        return "points"
    return "binary-images" if spec.kind == "binary" else "gray-images"


def supports(cls: type, spec: DataSpec) -> str | None:
    r"""None if ``cls`` can model data of this spec, else the reason why not."""
    if spec.base_kind not in cls.kinds:
        return f"{cls.name} models {'/'.join(cls.kinds)} data, not {spec.kind}"
    if cls.images_only and not spec.is_image:
        return f"{cls.name} needs images (C, H, W), not event shape {spec.event_shape}"
    if cls.conditional and not spec.num_classes:
        return f"{cls.name} models p(x | y) and needs labelled data"
    return None


def create(name: str, data: Dataset | DataSpec, **config) -> GenerativeModel:
    r"""Builds the registered model ``name``, sized for the data's kind and event shape.

    Arguments:
        name: a registry key (see :func:`model_names`).
        data: a :class:`~ppgen.data.Dataset` or its :class:`~ppgen.data.DataSpec`.
        config: keyword arguments of the model's constructor, overriding its defaults (those of the
            data's regime first, see :meth:`GenerativeModel.defaults_for`).

    The model's ``config`` holds every option it was built with (the regime's and the given ones),
    ``defaults_regime`` the regime whose defaults applied, and ``fit_defaults`` the fit options' defaults
    for these data.
    """
    if not isinstance(name, str):
        raise PPGenError(
            f"the model name must be a string (see ppgen.model_names()), got {type(name).__name__}"
        )
    cls = get(name)
    if not isinstance(data, (Dataset, DataSpec)):
        hint = f"; load it with ppgen.data.load({data!r})" if isinstance(data, str) else ""
        raise PPGenError(
            f"create({name!r}, data): expected a Dataset or DataSpec, got {type(data).__name__}{hint}"
        )
    spec = data.spec if isinstance(data, Dataset) else data
    if (reason := supports(cls, spec)) is not None:
        raise PPGenError(reason)
    defaults = cls.defaults_for(spec)
    config = {**defaults["config"], **config}
    _check_config(cls, config)
    try:
        model = cls(spec, **config)
    except PPGenError:
        raise
    except CONFIG_ERRORS as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PPGenError(f"bad config for {name}: {_config_culprits(cls, config)}{message}") from None
    model.config = dict(config)
    model.defaults_regime = defaults["regime"]
    model.fit_defaults = defaults["fit"]
    return model


def _config_culprits(cls: type, config: dict) -> str:
    r"""The options whose value is not of the kind of their default (a number for a tuple, ...), named."""
    defaults = {}
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            for p in inspect.signature(vars(klass)["__init__"]).parameters.values():
                if p.default is not p.empty and p.default is not None:
                    defaults.setdefault(p.name, p.default)
    sequence = (list, tuple)
    bad = [
        f"{k}={v!r} (expected {'a list' if isinstance(defaults[k], sequence) else 'a value'} "
        f"like {defaults[k]!r})"
        for k, v in config.items()
        if k in defaults
        and (
            isinstance(defaults[k], sequence) != isinstance(v, sequence)
            or isinstance(v, str) != isinstance(defaults[k], str)
        )
    ]
    return "; ".join(bad) + ": " if bad else ""


def _check_config(cls: type, config: dict) -> None:
    r"""Refuses options whose default is a positive integer (a size or a count) given as a negative
    number, a fraction or a string; the constructor checks the rest."""
    for key, value in config.items():
        default = inspect.signature(cls.__init__).parameters.get(key)
        default = None if default is None else default.default
        if isinstance(default, bool) or not isinstance(default, int) or default < 1:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PPGenError(
                f"bad config for {cls.name}: {key} must be a non-negative integer, got {value!r}"
            )
