"""The contract every registered model keeps: one parametrized driver over the registry (as zuko's flows).

For each name ``ppgen.model_names()`` returns and each data kind the model accepts, on tiny data of that
kind: ``log_prob`` is (B,) (or a :class:`PPGenError` for implicit models), samples have the event shape
and lie in the kind's support, one step of the model's own objective (through :func:`ppgen.fit`) reaches
every trainable parameter, a saved state dict loaded into a fresh model gives the same densities and the
same samples under a seed, eval-mode densities are deterministic (under a seed for stochastic bounds),
``log_prob`` and ``sample`` leave the model unchanged, ``.to`` moves every parameter and buffer, and bad
input raises a :class:`PPGenError`. Family test files keep what is specific to their family.
"""

import inspect
import io
import math

import pytest
import torch

import ppgen
from ppgen.app.cli import main as cli
from ppgen.base import get
from ppgen.data import Dataset, from_tensor
from ppgen.errors import PPGenError

NAMES = ppgen.model_names()

# Tiny networks: most defaults are sized for digits and MNIST, and this driver builds and steps every
# model many times, so these configs keep each one to a few hundred parameters (and the whole file to
# seconds). A model missing here is small by default; only the names come from the registry.
SMALL = {
    "mixture": {"components": 3},
    "made": {"hidden_sizes": [16], "num_masks": 2},
    "nade": {"hidden": 8},
    "rnade": {"hidden": 8, "components": 2},
    "pixelcnn": {"channels": 4, "layers": 1, "first_kernel": 3, "head": 8},
    "gated-pixelcnn": {"channels": 4, "layers": 1, "first_kernel": 3, "head": 8},
    "pixelrnn": {"channels": 4, "layers": 1, "first_kernel": 3, "head": 8},
    "realnvp": {"num_layers": 2, "hidden_dims": (8,)},
    "maf": {"num_layers": 2, "hidden_dims": (8,)},
    "nsf": {"num_layers": 2, "hidden_dims": (8,), "count_bins": 4},
    "planar": {"num_layers": 2, "hidden_dims": (8,)},
    "glow": {"levels": 1, "steps_per_level": 1, "hidden": 8},
    "vae": {"hidden": (8,), "pseudo_inputs": 4, "elbo_samples": 2},
    "iwae": {"hidden": (8,), "pseudo_inputs": 4, "particles": 3},
    "cvae": {"hidden": (8,)},
    "vae-iaf": {"hidden": (8,), "pseudo_inputs": 4, "flows": 1, "elbo_samples": 2},
    "ddpm": {"timesteps": 4, "hidden": 8, "blocks": 1, "width": 4},
    "smld": {"num_sigmas": 3, "hidden": 8, "layers": 1, "steps_per_sigma": 2},
    "ebm": {"hidden": 8, "layers": 1, "train_steps": 2, "sample_steps": 3, "sample_jumps": 1},
    "gan": {"hidden": 8, "layers": 1},
    "wgan-gp": {"hidden": 8, "layers": 1},
    "dcgan": {"channels": 4},
}
# Pyro's AffineAutoregressive._inverse, the MAF's sampling direction, starts from float32 zeros whatever the
# model's dtype (pyro-ppl 1.9.2, pyro/distributions/transforms/affine_autoregressive.py:152); a conditional
# MAF samples, as its float64 context promotes the concatenated input.
SAMPLES_ONLY_IN_FLOAT32 = {"maf"}
KINDS = {"binary": "binary", "categorical": "categorical:3", "continuous": "continuous"}
COLOUR = "categorical:4"  # the colour case of image models: 3 x 4 x 4 RGB images at 4 levels
N = 16  # training examples


def tiny_data(name: str, kind: str, labelled: bool = False) -> Dataset:
    r"""N examples of ``kind``: 4x4 one-channel images for image models (three channels for ``COLOUR``),
    else 6 dims (2 if continuous)."""
    image = (3, 4, 4) if kind == COLOUR else (1, 4, 4)
    shape = image if get(name).images_only else (2,) if kind == "continuous" else (6,)
    g = torch.Generator().manual_seed(0)
    if kind == "continuous":
        x = torch.randn(N, *shape, generator=g)
    else:
        x = torch.randint(
            0, {"binary": 2, KINDS["categorical"]: 3, COLOUR: 4}[kind], (N, *shape), generator=g
        )
        x = x.float()
    return from_tensor(x, kind, y=torch.arange(N) % 2 if labelled else None)


def labels(model, n: int):
    return torch.arange(n) % 2 if model.conditional else None


def cases() -> list[tuple[str, str, bool]]:
    r"""(name, kind, conditional): every model on every kind it accepts, image models with categorical
    levels also on RGB images (``COLOUR``); models with an optional ``conditional`` switch also as
    p(x | y), on their first kind."""
    out = []
    for name in NAMES:
        cls = get(name)
        out += [(name, KINDS[kind], cls.conditional) for kind in cls.kinds]
        if cls.images_only and "categorical" in cls.kinds:
            out.append((name, COLOUR, cls.conditional))
        if not cls.conditional and "conditional" in inspect.signature(cls).parameters:
            out.append((name, KINDS[cls.kinds[0]], True))
    return out


CASES = cases()
IDS = [
    f"{name}-{'colour' if kind == COLOUR else kind.split(':')[0]}{'-given-y' * conditional}"
    for name, kind, conditional in CASES
]
parametrize = pytest.mark.parametrize("name,kind,conditional", CASES, ids=IDS)


def create(name: str, kind: str, conditional: bool):
    data = tiny_data(name, kind, labelled=conditional)
    switch = {"conditional": True} if conditional and not get(name).conditional else {}
    return ppgen.create(name, data, **SMALL.get(name, {}), **switch), data


def build(name: str, kind: str, conditional: bool):
    r"""The model on tiny data, fitted for one step (so data-dependent state, a standardization, is set)."""
    ppgen.seed_everything(0)
    model, data = create(name, kind, conditional)
    ppgen.fit(model, data, steps=1, batch_size=N, progress=False)
    return model.eval(), data


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def in_support(x, kind: str) -> bool:
    if kind == "continuous":
        return bool(torch.isfinite(x).all())
    k = 2 if kind == "binary" else int(kind.split(":")[1])
    return bool(((x >= 0) & (x < k) & (x == x.round())).all())


def seeded(fn, seed: int = 7):
    ppgen.seed_everything(seed)
    with torch.no_grad():
        return fn()


# --- coverage ---------------------------------------------------------------------------------------------
def test_the_driver_covers_every_model_ppgen_list_prints(capsys):
    assert cli(["list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    assert listed == ppgen.model_names() == list(dict.fromkeys(name for name, _, _ in CASES))
    assert set(SMALL) <= set(listed)  # no config left for a model that is gone
    for test in (globals()[k] for k in sorted(globals()) if k.startswith("test_") and "covers" not in k):
        (marks,) = [m for m in test.pytestmark if m.name == "parametrize"]
        assert list(marks.args[1]) == CASES, test.__name__


# --- densities and samples --------------------------------------------------------------------------------
@parametrize
def test_log_prob_is_one_number_per_example_or_undefined(name, kind, conditional):
    model, data = build(name, kind, conditional)
    x, y = data.x[:5], labels(model, 5)
    if model.density == "implicit":
        with pytest.raises(PPGenError):
            model.log_prob(x, y)
        return
    with torch.no_grad():
        lp = model.log_prob(x, y)
    assert lp.shape == (5,) and lp.dtype == torch.float32 and torch.isfinite(lp).all()


@parametrize
def test_samples_have_the_event_shape_and_lie_in_the_support(name, kind, conditional):
    model, data = build(name, kind, conditional)
    x = model.sample(7, labels(model, 7))
    assert x.shape == (7, *data.event_shape) and x.is_floating_point()
    assert in_support(x, kind)


@parametrize
def test_log_prob_and_sample_leave_the_model_unchanged(name, kind, conditional):
    model, data = build(name, kind, conditional)
    before = state(model)
    if model.density != "implicit":
        model.log_prob(data.x[:5], labels(model, 5))
    model.sample(3, labels(model, 3))
    assert same_state(before, state(model)) and not model.training


@parametrize
def test_eval_mode_is_deterministic(name, kind, conditional):
    model, data = build(name, kind, conditional)
    x, y = data.x[:5], labels(model, 5)
    if model.density in ("exact", "unnormalized"):
        with torch.no_grad():
            assert torch.equal(model.log_prob(x, y), model.log_prob(x, y))
    elif model.density == "lower-bound":  # a stochastic bound: the same under the same seed
        assert torch.equal(seeded(lambda: model.log_prob(x, y)), seeded(lambda: model.log_prob(x, y)))
    y = labels(model, 4)
    assert torch.equal(seeded(lambda: model.sample(4, y)), seeded(lambda: model.sample(4, y)))


# --- training ---------------------------------------------------------------------------------------------
@parametrize
def test_evaluating_between_epochs_leaves_training_as_it_was(name, kind, conditional):
    r"""What happens to the model at an epoch's end for a checkpoint's score or a quality curve (eval mode,
    a density and samples on a forked RNG, back to train mode) changes nothing in the steps that follow:
    the same weights after two epochs with and without it (the curve is taken at moments of wall time,
    so anything else would make a run depend on the machine's speed)."""

    def score(epoch, row, objective):
        m = objective.model
        m.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            if m.density != "implicit":
                m.log_prob(data.x[:3], labels(m, 3))
            m.sample(2, labels(m, 2))
        m.train()

    def fitted(on_epoch_end=None):
        ppgen.seed_everything(0)
        model, _ = create(name, kind, conditional)
        ppgen.fit(model, data, epochs=2, batch_size=N // 2 - 1, on_epoch_end=on_epoch_end, progress=False)
        return state(model)

    data = tiny_data(name, kind, labelled=conditional)
    assert same_state(fitted(), fitted(score))


@parametrize
def test_one_step_of_the_models_objective_reaches_every_parameter(name, kind, conditional):
    model, data = create(name, kind, conditional)
    before = state(model)
    finite = {}
    for pname, p in model.named_parameters():
        if p.requires_grad:
            p.register_hook(lambda g, pname=pname: finite.__setitem__(pname, bool(torch.isfinite(g).all())))
    ppgen.fit(model, data, steps=1, batch_size=N, progress=False)
    if model.objective == "counting":  # closed form: no gradient, the counts set every table
        assert finite == {}
        changed = state(model)
        assert all(not torch.equal(before[k], changed[k]) for k, _ in model.named_parameters())
        return
    trainable = [pname for pname, p in model.named_parameters() if p.requires_grad]
    assert trainable and sorted(finite) == sorted(trainable)
    assert all(finite.values()), [k for k, ok in finite.items() if not ok]


# --- persistence and devices ------------------------------------------------------------------------------
@parametrize
def test_a_saved_state_dict_gives_the_same_densities_and_samples(name, kind, conditional):
    model, data = build(name, kind, conditional)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    ppgen.seed_everything(1)  # a fresh model with other initial weights
    fresh = ppgen.create(name, data, **model.config)
    fresh.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=True))
    fresh.eval()
    assert same_state(state(model), state(fresh))
    x, y = data.x[:5], labels(model, 5)
    if model.density != "implicit":
        assert torch.equal(seeded(lambda: model.log_prob(x, y)), seeded(lambda: fresh.log_prob(x, y)))
    assert torch.equal(
        seeded(lambda: model.sample(6, labels(model, 6))), seeded(lambda: fresh.sample(6, labels(model, 6)))
    )


@parametrize
def test_to_moves_every_parameter_and_buffer(name, kind, conditional):
    model, data = build(name, kind, conditional)
    model.to(torch.float64)
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    assert all(t.dtype == torch.float64 for t in tensors.values() if t.is_floating_point())
    x, y = data.x[:5].double(), labels(model, 5)
    if model.density != "implicit":  # a tensor left behind in float32 would show here
        with torch.no_grad():
            assert model.log_prob(x, y).dtype == torch.float64
    if name in SAMPLES_ONLY_IN_FLOAT32 and not conditional:
        with pytest.raises(RuntimeError, match="dtype"):
            model.sample(3)
    else:
        assert model.sample(3, labels(model, 3)).dtype == torch.float64
    model.to("meta")
    assert all(t.device.type == "meta" for t in list(model.parameters()) + list(model.buffers()))


@pytest.mark.gpu
@parametrize
def test_runs_on_cuda(name, kind, conditional):
    model, data = build(name, kind, conditional)
    model.to("cuda")
    assert all(t.device.type == "cuda" for t in list(model.parameters()) + list(model.buffers()))
    on = lambda y: None if y is None else y.cuda()
    if model.density != "implicit":
        with torch.no_grad():
            assert model.log_prob(data.x[:5].cuda(), on(labels(model, 5))).device.type == "cuda"
    assert model.sample(3, on(labels(model, 3))).device.type == "cuda"


# --- validation -------------------------------------------------------------------------------------------
@parametrize
def test_bad_input_raises_a_ppgen_error(name, kind, conditional):
    model, data = build(name, kind, conditional)
    check = (
        model.check_input if model.density == "implicit" else lambda x: model.log_prob(x, labels(model, 2))
    )
    x = data.x[:2]
    outside = math.inf if kind == "continuous" else float(model.spec.num_categories)
    for bad in (
        x.reshape(2, -1)[:, :-1],  # wrong event shape
        x[0],  # no batch dimension
        torch.full_like(x, math.nan),  # NaN
        torch.full_like(x, outside),  # outside the kind's support
    ):
        with pytest.raises(PPGenError):
            check(bad)
    if model.conditional:
        unseen = torch.tensor([0, 5])  # a label the model never saw
        with pytest.raises(PPGenError):
            model.sample(2, unseen)
        if model.density != "implicit":
            with pytest.raises(PPGenError):
                model.log_prob(x)  # no labels
            with pytest.raises(PPGenError):
                model.log_prob(x, unseen)
