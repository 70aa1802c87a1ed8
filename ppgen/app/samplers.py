"""The samplers a model offers, from the fastest usable one to the most faithful, and how to switch.

ddpm samples by DDIM with S steps or ancestrally with all T; smld and ebm by Langevin chains whose
length is a setting; the pixel models by a cached or a naive (full recompute) sequential pass. Every
other model has one sampler. :func:`fast_sampler` is what ``ppgen compare`` uses to score samples,
:func:`sampler_sweep` what its sampling-cost figure times.
"""

import contextlib
import functools
import inspect
from dataclasses import dataclass, field

__all__ = ["Sampler", "fast_sampler", "sampler_sweep", "use_sampler"]

DDIM_STEPS = (10, 20, 50, 100)
FAST_DDIM_STEPS = 50


@dataclass(frozen=True)
class Sampler:
    r"""One way of drawing samples: a label for tables, keyword arguments of ``sample`` and attributes to set.

    Arguments:
        label: e.g. "ddim-50", "ancestral-1000", "langevin-500", "cached", "naive", "one-shot".
        kwargs: passed to ``model.sample(n, **kwargs)``.
        attrs: model attributes set while the sampler is in use (e.g. ``steps_per_sigma``).
    """

    label: str
    kwargs: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)


def _default_label(model) -> str:
    return {
        "flow": "inverse",
        "autoregressive": "sequential",
        "graphical": "ancestral",
        "latent-variable": "ancestral",
        "adversarial": "one-shot",
    }.get(model.family, "default")


def _langevin_steps(model) -> list[tuple[str, int]]:
    r"""(attribute, values) of the chain length: smld's steps per noise level, ebm's SGLD steps."""
    attr = "steps_per_sigma" if hasattr(model, "steps_per_sigma") else "sample_steps"
    s = int(getattr(model, attr))
    return attr, sorted({max(1, s // 25), max(1, s // 5), max(1, s // 2), s})


def _langevin(model, attr: str, value: int) -> Sampler:
    old = getattr(model, attr)
    setattr(model, attr, value)
    try:
        total = model.num_sampling_steps
    finally:
        setattr(model, attr, old)
    return Sampler(f"langevin-{total}", attrs={attr: value})


def sampler_sweep(model) -> list[Sampler]:
    r"""The samplers whose cost and quality ``ppgen compare`` plots, cheapest first."""
    if model.name == "ddpm":
        steps = [s for s in DDIM_STEPS if s < model.T]
        return [Sampler(f"ddim-{s}", {"steps": s, "method": "ddim"}) for s in steps] + [
            Sampler(f"ancestral-{model.T}", {"method": "ancestral"})
        ]
    if hasattr(model, "num_sampling_steps") and hasattr(model, "sample_u"):
        attr, values = _langevin_steps(model)
        return [_langevin(model, attr, v) for v in values]
    if "cached" in inspect.signature(model.sample).parameters:
        return [Sampler("cached", {"cached": True}), Sampler("naive", {"cached": False})]
    return [Sampler(_default_label(model))]


def fast_sampler(model) -> Sampler:
    r"""The sampler ``ppgen compare`` scores a model by: DDIM-50 for ddpm, cached for the pixel models,
    the model's own settings otherwise."""
    if model.name == "ddpm":
        s = min(FAST_DDIM_STEPS, model.T)
        return Sampler(f"ddim-{s}", {"steps": s, "method": "ddim"})
    if hasattr(model, "num_sampling_steps") and hasattr(model, "sample_u"):
        return Sampler(f"langevin-{model.num_sampling_steps}")
    if "cached" in inspect.signature(model.sample).parameters:
        return Sampler("cached", {"cached": True})
    return Sampler(_default_label(model))


@contextlib.contextmanager
def use_sampler(model, sampler: Sampler):
    r"""Within the block, ``model.sample(n)`` draws with ``sampler``; the model is restored afterwards."""
    old = {k: getattr(model, k) for k in sampler.attrs}
    for k, v in sampler.attrs.items():
        setattr(model, k, v)
    if sampler.kwargs:
        model.sample = functools.partial(type(model).sample, model, **sampler.kwargs)
    try:
        yield model
    finally:
        if sampler.kwargs:
            del model.sample
        for k, v in old.items():
            setattr(model, k, v)
