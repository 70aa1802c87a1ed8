"""A user's own Pyro program as a ppgen model: ``ppgen.program(model, guide, name=...)``.

What the program defines is read from its trace, not written again: with no latent sites ``log_prob`` is
the exact log p(x) of the trace; with only discrete finite latent sites it is the exact marginal, the
latents enumerated (``ppgen.estimators.enumeration``); with continuous latent sites and a guide it is the
ELBO, and ``estimate_log_prob(x, K)`` the IWAE-K estimate (``ppgen.estimators.importance``). ``sample(n)``
runs the program forward with :class:`pyro.infer.Predictive`. Training uses the matching Pyro objective
(``Trace_ELBO``, or ``TraceEnum_ELBO`` for enumerated latents), so :func:`ppgen.fit` needs no special case.

Every parameter is the adapter's: ``nn.Module`` parameters (of a model/guide that is a module or a method of
one, Pyro autoguides included), networks registered with ``pyro.module`` and ``pyro.param`` sites. The
``pyro.param`` sites are found by tracing the program once; each becomes an ``nn.Parameter`` holding its
unconstrained value, served back to the program (constrained) by a small handler on every run. So
``parameters()`` reaches all of them, ``state_dict()`` saves them, and the global param store is left alone.
Each run sees an empty param store (``ParamStoreDict.scope``), so that PyroModules (autoguides) and
``pyro.module`` networks keep their own parameters and nothing stale from another program leaks in.
"""

import inspect

import pyro
import torch
from pyro import poutine
from pyro.distributions.transforms import transform_to
from pyro.infer import Predictive, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import Tensor, nn

from ppgen.base import GenerativeModel
from ppgen.data import Dataset, DataSpec
from ppgen.errors import PPGenError
from ppgen.estimators.enumeration import enumerated_log_prob
from ppgen.estimators.importance import elbo_estimate, log_importance_weights, log_marginal

__all__ = ["program", "Program"]

PROBE_BATCH = 7  # examples traced to discover the sites (an odd size, unlikely to equal another plate's)


def _nothing(*args, **kwargs):
    r"""The empty guide of a program without guided latent sites."""


def _takes_labels(fn) -> bool:
    r"""Whether ``fn`` accepts labels: a parameter named ``y``, or a second positional parameter."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.name == "y" for p in params) or len(positional) >= 2


class _Serve(Messenger):
    r"""Serves the adapter's values at the program's ``pyro.param`` sites (no param store lookup)."""

    def __init__(self, values: dict):
        super().__init__()
        self.values = values

    def _pyro_param(self, msg) -> None:
        if msg["name"] in self.values:
            msg["value"] = self.values[msg["name"]]


class Program(GenerativeModel):
    r"""A Pyro program ``model(x)`` (or ``model(x, y)``) and its guide as a ppgen model.

    Build it with :func:`program`. The density kind follows from the program's latent sites (found by a
    trace over a few examples the first time data are seen): none -> "exact"; all discrete and finite,
    and no guide for them -> "exact" (enumerated); guided -> "lower-bound". Subclass it to override any
    of ``log_prob``, ``estimate_log_prob``, ``sample``.

    Attributes (after the first trace):
        observed: the observed site's name.
        plate: the name of the plate over examples (the one around the observed site).
        max_plate_nesting: the number of plates the program nests.
        latent_sites: the names of the latent sample sites, in program order.
        enumerated: whether the latent sites are summed out by enumeration (exact density).
    """

    name = "program"
    family = "latent-variable"
    density = "lower-bound"
    fit_defaults = {"epochs": 50, "batch_size": 128, "lr": 1e-3}

    def __init__(
        self,
        model,
        guide=None,
        *,
        observed: str | None = None,
        data: Dataset | DataSpec | None = None,
        elbo: pyro.infer.ELBO | None = None,
        elbo_samples: int = 16,
    ):
        super().__init__(data.spec if isinstance(data, Dataset) else data)
        if not callable(model) or (guide is not None and not callable(guide)):
            raise PPGenError(f"{self.name}: model and guide must be callable Pyro programs")
        modules = []
        for fn in (model, guide):
            for owner in (fn, getattr(fn, "__self__", None)):
                if isinstance(owner, nn.Module) and all(owner is not m for m in modules):
                    modules.append(owner)
        self.program_modules = nn.ModuleList(modules)  # its parameters, autoguides' too (after the trace)
        self.pyro_params = nn.ParameterDict()  # pyro.param sites (unconstrained) and pyro.module extras
        self.__dict__.update(_model_fn=model, _guide_fn=guide)  # kept out of the module tree
        self._served: dict = {}  # pyro.param name -> (key in pyro_params, constraint)
        self._takes_y = _takes_labels(model)
        self.observed, self.plate, self.max_plate_nesting = observed, None, 1
        self.latent_sites: list = []
        self.enumerated = False
        self._elbo, self.elbo_samples = elbo, elbo_samples
        self.discovered = False
        self.density = "lower-bound" if guide is not None else "exact"
        if data is not None:
            self.bind(data)

    # --- the program, with its parameters served ---------------------------------------------------
    def _args(self, x, y) -> tuple:
        return (x, y) if self._takes_y else (x,)

    def _run(self, fn, x, y):
        values = {name: transform_to(c)(self.pyro_params[key]) for name, (key, c) in self._served.items()}
        with pyro.get_param_store().scope(), _Serve(values):  # an empty store: nothing stale, nothing left
            return fn(*self._args(x, y))

    def model(self, x=None, y=None):
        fn = config_enumerate(self._model_fn, default="parallel") if self.enumerated else self._model_fn
        return self._run(fn, x, y)

    def guide(self, x=None, y=None):
        return None if self._guide_fn is None else self._run(self._guide_fn, x, y)

    def elbo(self) -> pyro.infer.ELBO:
        if self._elbo is not None:
            return self._elbo
        if self.enumerated:
            return TraceEnum_ELBO(max_plate_nesting=self.max_plate_nesting)
        return Trace_ELBO(max_plate_nesting=self.max_plate_nesting)

    # --- discovery -----------------------------------------------------------------------------------
    def bind(self, data: Dataset | DataSpec) -> "Program":
        r"""Sizes the program for ``data`` (its spec) and traces it once to find its sites and parameters.

        Called by :func:`program` when given ``data``, and by :func:`ppgen.fit` otherwise.
        """
        spec = data.spec if isinstance(data, Dataset) else data
        if self.spec is None:
            self.spec = spec
        elif spec.kind != self.spec.kind or tuple(spec.event_shape) != tuple(self.spec.event_shape):
            raise PPGenError(
                f"{self.name} was built for {self.spec.kind} data of shape {self.spec.event_shape}, "
                f"got {spec.kind} {spec.event_shape}"
            )
        if not self.discovered:
            if isinstance(data, Dataset):
                x = data.x[:PROBE_BATCH]
                y = None if data.y is None else data.y[:PROBE_BATCH]
            else:
                x = torch.zeros(PROBE_BATCH, *spec.event_shape)
                y = torch.zeros(PROBE_BATCH, dtype=torch.long) if spec.num_classes else None
            self.discover(x.to(self.device), None if y is None else y.to(self.device))
        return self

    def discover(self, x: Tensor, y: Tensor | None = None) -> None:
        r"""Traces model and guide on ``x`` (a few examples): sites, plates, density kind and parameters."""
        store = pyro.get_param_store()
        with store.scope():
            model_trace = poutine.trace(self._model_fn).get_trace(*self._args(x, y))
            traces = [model_trace]
            if self._guide_fn is not None:
                traces.append(poutine.trace(self._guide_fn).get_trace(*self._args(x, y)))
            state = store.get_state()
        self._adopt_parameters(traces, state)
        sites = [
            s for t in traces for s in t.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)
        ]
        observed = [s["name"] for s in sites if s["is_observed"]]
        if self.observed is None:
            if len(observed) != 1:
                raise PPGenError(
                    f"{self.name}: the program observes {len(observed)} sites "
                    f"({', '.join(observed) or 'none'}); "
                    "expected one observed site of x (pyro.sample(..., obs=x)), or name it with observed="
                )
            self.observed = observed[0]
        elif self.observed not in observed:
            raise PPGenError(
                f"{self.name}: observed={self.observed!r} is not an observed site of the program; "
                f"its observed sites: {', '.join(observed) or 'none'}"
            )
        frames = [
            f
            for f in model_trace.nodes[self.observed]["cond_indep_stack"]
            if f.vectorized and f.size == x.shape[0]
        ]
        if not frames:
            raise PPGenError(
                f"{self.name}: the observed site {self.observed!r} is not inside a plate over the examples; "
                "expected `with pyro.plate('data', x.shape[0]):` around it"
            )
        self.plate = min(frames, key=lambda f: f.dim).name if len(frames) > 1 else frames[0].name
        self.max_plate_nesting = max(
            (-f.dim for s in sites for f in s["cond_indep_stack"] if f.vectorized), default=1
        )
        guided = {s["name"] for s in sites if len(traces) > 1 and s["name"] in traces[1].nodes}
        latents = [
            s
            for s in model_trace.nodes.values()
            if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)
        ]
        self.latent_sites = [s["name"] for s in latents]
        unguided = [s for s in latents if s["name"] not in guided]
        for s in unguided:
            if not getattr(s["fn"], "has_enumerate_support", False):
                raise PPGenError(
                    f"{self.name}: latent site {s['name']!r} ({type(s['fn']).__name__}) is continuous "
                    "and has no guide; "
                    "pass guide= (e.g. a function, or pyro.infer.autoguide.AutoNormal(model))"
                )
        if unguided and guided:
            raise PPGenError(
                f"{self.name}: latent sites {', '.join(s['name'] for s in unguided)} are enumerated and "
                f"{', '.join(sorted(guided))} guided; mixing the two is not supported: "
                "guide all of them or none"
            )
        self.enumerated = bool(unguided)
        self.density = "lower-bound" if guided else "exact"
        if not latents:
            self.family = "graphical"
        self.discovered = True

    def _adopt_parameters(self, traces, state: dict) -> None:
        owned = {id(p) for p in self.parameters()}  # after the trace: autoguides have built theirs
        for trace in traces:
            for name, site in trace.nodes.items():
                if site["type"] != "param":
                    continue
                key = "".join(c if c.isalnum() else "_" for c in name)
                stored = state["params"][name]
                if isinstance(stored, nn.Parameter):  # pyro.module or a PyroModule: a network's own parameter
                    if id(stored) not in owned:
                        self.pyro_params[key] = stored
                        owned.add(id(stored))
                    continue
                if name in self._served:
                    continue
                if key in self.pyro_params:
                    raise PPGenError(f"{self.name}: two parameter names map to {key!r}; rename one")
                self.pyro_params[key] = nn.Parameter(stored.detach().clone())
                self._served[name] = (key, state["constraints"][name])

    def _ensure_discovered(self, x: Tensor, y: Tensor | None) -> None:
        if not self.discovered:
            self.discover(x[:PROBE_BATCH], None if y is None else y[:PROBE_BATCH])

    # --- densities and samples -----------------------------------------------------------------------
    def check_input(self, x: Tensor) -> Tensor:
        if self.spec is not None:
            return super().check_input(x)
        if not isinstance(x, Tensor) or x.ndim < 1:
            raise PPGenError(f"{self.name}: expected x as a tensor (B, ...), got {type(x).__name__}")
        if not torch.isfinite(x).all():
            raise PPGenError(f"{self.name}: x contains NaN or infinite values")
        return x

    def _estimator_options(self) -> dict:
        return {"plate": self.plate, "max_plate_nesting": self.max_plate_nesting}

    def log_prob(self, x: Tensor, y: Tensor | None = None, num_samples: int | None = None) -> Tensor:
        r"""(B, *event_shape) -> (B,) nats: exact log p(x) ("exact" programs) or the ELBO averaged over
        ``num_samples`` draws (default ``elbo_samples``) ("lower-bound" programs)."""
        x = self.check_input(x)
        self._ensure_discovered(x, y)
        if self.enumerated:
            return enumerated_log_prob(self.model, x, y, **self._estimator_options())
        if not self.latent_sites:
            log_w, _ = log_importance_weights(
                self.model, _nothing, x, y, num_samples=1, **self._estimator_options()
            )
            return log_w[0]
        return elbo_estimate(
            self.model,
            self.guide,
            x,
            y,
            num_samples=num_samples or self.elbo_samples,
            **self._estimator_options(),
        )

    @torch.no_grad()
    def estimate_log_prob(self, x: Tensor, num_samples: int = 1000, y: Tensor | None = None) -> Tensor:
        r"""The IWAE-K estimate of log p(x), (B,) nats, K = ``num_samples`` guide draws (exact: log p(x))."""
        x = self.check_input(x)
        self._ensure_discovered(x, y)
        if self.density == "exact":
            return self.log_prob(x, y)
        return log_marginal(
            self.model, self.guide, x, y, num_samples=num_samples, **self._estimator_options()
        )

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        r"""n draws of the observed site, (n, *event_shape), by running the program forward (Predictive)."""
        if self.spec is None:
            raise PPGenError(
                f"{self.name}: sample needs the data's shape; fit the program or pass data= first"
            )
        x = torch.zeros(n, *self.spec.event_shape, device=self.device)
        self._ensure_discovered(x, y)
        predictive = Predictive(
            poutine.uncondition(self.model), num_samples=1, return_sites=(self.observed,), parallel=False
        )
        draws = predictive(x, y)[self.observed][0]
        if draws.numel() != x.numel():
            raise PPGenError(
                f"{self.name}: the observed site {self.observed!r} drew shape {tuple(draws.shape)}, "
                f"not {n} examples of {self.spec.event_shape}"
            )
        return draws.reshape(x.shape).to(x.dtype)

    def extra_repr(self) -> str:
        sites = ", ".join(self.latent_sites) or "none"
        return (
            f"name={self.name!r}, density={self.density!r}, observed={self.observed!r}, latent sites: {sites}"
        )


def program(
    model,
    guide=None,
    *,
    name: str,
    observed: str | None = None,
    data: Dataset | DataSpec | None = None,
    elbo: pyro.infer.ELBO | None = None,
    elbo_samples: int = 16,
    fit_defaults: dict | None = None,
) -> Program:
    r"""Turns a Pyro program into a ppgen model that :func:`ppgen.fit`, ``evaluate``, ``compare`` and
    ``inspect`` take like a built-in one.

    Arguments:
        model: the generative program, called as ``model(x)`` (or ``model(x, y)`` when it takes labels),
            observing x (B, *event_shape), possibly reshaped, inside a plate over the examples. A plain
            function (its networks registered with ``pyro.module``), a method of an ``nn.Module``, or a
            PyroModule; ``pyro.param`` sites are trained too.
        guide: its guide over the continuous latent sites, called like ``model``: a function, a method,
            or a Pyro autoguide (``AutoNormal(model)``, ...). None when the program has no latent sites
            or only discrete finite ones (then they are enumerated: exact density).
        name: the model's name in reports and run directories.
        observed: the observed site's name; found from the trace when the program observes one site.
        data: a :class:`~ppgen.data.Dataset` or :class:`~ppgen.data.DataSpec` to size the program now;
            otherwise the first data it is fit to.
        elbo: the Pyro objective to train with (default ``Trace_ELBO``, ``TraceEnum_ELBO`` when enumerated).
        elbo_samples: the draws ``log_prob`` averages for lower-bound programs.
        fit_defaults: default ``epochs``, ``batch_size``, ``lr`` (and objective options) of :func:`ppgen.fit`.

    Returns:
        A :class:`Program` (a :class:`~ppgen.base.GenerativeModel`).

    Example:
        >>> import ppgen, pyro, pyro.distributions as dist, torch
        >>> def model(x):
        ...     loc = pyro.param("loc", torch.zeros(2))
        ...     with pyro.plate("data", x.shape[0]):
        ...         pyro.sample("obs", dist.Normal(loc, 1.0).to_event(1), obs=x)
        >>> m = ppgen.program(model, name="gauss", data=ppgen.data.DataSpec("continuous", (2,)))
        >>> m.density, m.observed, m.log_prob(torch.zeros(3, 2)).shape
        ('exact', 'obs', torch.Size([3]))
    """
    if not isinstance(name, str) or not name:
        raise PPGenError(f"program: name must be a non-empty string, got {name!r}")
    defaults = {**Program.fit_defaults, **(fit_defaults or {})}
    cls = type(
        f"Program[{name}]", (Program,), {"name": name, "fit_defaults": defaults, "__module__": __name__}
    )
    return cls(model, guide, observed=observed, data=data, elbo=elbo, elbo_samples=elbo_samples)
