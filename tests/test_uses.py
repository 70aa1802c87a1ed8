"""What densities are good for, on constructed cases: AUROC, Bayes rate, exact completion, reject curves."""

import itertools
import json
import math

import pytest
import torch

import ppgen
from ppgen.app import runs
from ppgen.app.cli import main
from ppgen.data import DataSpec
from ppgen.graph import BayesNet
from ppgen.inference.tasks import anomaly, classify, missing
from ppgen.inference.tasks.complete import complete, completion_metrics, hidden_mask
from ppgen.models.bayesnet import BayesNetModel


# --- outlier rejection -----------------------------------------------------------------------------------
def test_auroc_of_a_perfect_and_a_random_scorer():
    inliers = torch.rand(500)
    assert anomaly.auroc(inliers, inliers + 1.5) == 1.0
    assert anomaly.auroc(inliers + 1.5, inliers) == 0.0
    random = anomaly.auroc(torch.randn(20_000), torch.randn(20_000))
    assert abs(random - 0.5) < 0.01  # sd of the AUROC of two equal samples of 20k: ~0.003


def test_outlier_sets_have_the_promised_shapes_and_edits():
    test = ppgen.data.load("digits", "test")
    sets = anomaly.image_outliers(test)
    assert all(x.shape == test.x.shape for x in sets.values())
    flipped = (sets["flip10"] != test.x).flatten(1).sum(1)
    assert (flipped == round(0.1 * 64)).all()
    moved = sets["shift1"]
    assert ((moved == 0) | (moved == 1)).all() and not torch.equal(moved, test.x)
    off = anomaly.off_support(
        ppgen.data.load("rings8", "train", n=500), ppgen.data.load("rings8", "test", n=500), 200
    )
    truth = ppgen.data.load("rings8", "test", n=500)
    assert off.shape == (200, 2) and (truth.log_prob(off) < truth.log_prob(truth.x).min()).all()


def test_exact_model_scores_noise_as_outliers():
    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    m = ppgen.create("independent", train)
    ppgen.fit(m, train, progress=False)
    table = anomaly.anomaly_table(
        {"independent": m}, test.x, {"noise": anomaly.uniform_noise(100, (1, 8, 8))}
    )
    assert table["independent"]["score"] == "-log p(x) (exact)"
    assert table["independent"]["auroc"]["noise"] > 0.99


# --- Bayes-rule classification ---------------------------------------------------------------------------
def _true_bernoulli_models(logits: torch.Tensor) -> list:
    models = []
    for row in logits:
        m = ppgen.create("independent", DataSpec("binary", (row.numel(),)))
        with torch.no_grad():
            m.params.copy_(row)
        models.append(m.eval())
    return models


def test_bayes_classifier_from_true_densities_reaches_the_bayes_rate():
    d, c = 6, 3
    logits = 1.5 * torch.randn(c, d)
    prior = torch.tensor([0.5, 0.3, 0.2])
    models = _true_bernoulli_models(logits)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))  # all 2^6 inputs
    joint = classify.class_log_likelihoods(models, states)[0].exp() * prior.double()
    bayes_rate = float(joint.max(1).values.sum())  # P(correct) of argmax_y p(x, y), exactly
    n = 20_000
    y = torch.multinomial(prior, n, replacement=True)
    x = torch.bernoulli(torch.sigmoid(logits[y]))
    loglik, kind = classify.class_log_likelihoods(models, x)
    pred, posterior, log_px = classify.bayes_classify(loglik, prior.log())
    accuracy = float((pred == y).double().mean())
    assert kind == "exact"
    assert abs(accuracy - bayes_rate) < 4 * (bayes_rate * (1 - bayes_rate) / n) ** 0.5
    assert torch.allclose(posterior.exp().sum(1), torch.ones(n, dtype=torch.float64))
    assert torch.allclose(log_px, (loglik + prior.log().double()).logsumexp(1))


def test_unconditional_model_refuses_bayes_rule():
    m = ppgen.create("independent", DataSpec("binary", (4,)))
    with pytest.raises(ppgen.PPGenError, match="unconditional"):
        classify.class_log_likelihoods(m, torch.zeros(2, 4))


def test_reject_curve_on_a_constructed_case():
    # confidence ranks every right answer above every wrong one: accuracy 1 until the wrong ones come in
    correct = torch.tensor([True] * 6 + [False] * 4)
    confidence = torch.cat([torch.linspace(1, 0.5, 6), torch.linspace(0.4, 0.0, 4)])
    coverage, accuracy = classify.reject_curve(correct, confidence)
    assert coverage[-1] == 1.0 and accuracy[-1] == pytest.approx(0.6)
    assert (accuracy[:6] == 1).all() and (accuracy[1:] <= accuracy[:-1] + 1e-12).all()
    # an uninformative confidence: the curve ends at the same accuracy, but does not start at 1
    _, flat = classify.reject_curve(correct, torch.zeros(10))
    assert flat[-1] == pytest.approx(0.6) and flat[0] == 1.0 and flat[6] < 1.0


# --- completion --------------------------------------------------------------------------------------------
def _empirical(draws: torch.Tensor, dims: list) -> torch.Tensor:
    codes = sum(draws[:, d].long() * 2**i for i, d in enumerate(dims))
    return torch.bincount(codes, minlength=2 ** len(dims)).double() / len(draws)


def _exact_conditional(model, x: torch.Tensor, hidden_dims: list) -> torch.Tensor:
    states = x.repeat(2 ** len(hidden_dims), 1)
    for code in range(2 ** len(hidden_dims)):
        for i, d in enumerate(hidden_dims):
            states[code, d] = (code >> i) & 1
    lp = model.log_prob(states).double()
    return (lp - lp.logsumexp(0)).exp()


@pytest.mark.parametrize("hidden_dims", [[3, 4], [0, 2]], ids=["last", "first-and-middle"])
def test_bayes_net_completion_matches_its_exact_conditional(hidden_dims):
    net = BayesNet.markov(5, order=2).randomize(concentration=0.7)
    model = BayesNetModel.wrap(net).eval()
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]])
    hidden = torch.zeros(5, dtype=torch.bool)
    hidden[hidden_dims] = True
    n = 4000
    draws, info = complete(model, x.repeat(n, 1), hidden)
    assert info["method"].startswith("exact")
    assert torch.equal(draws[:, ~hidden], x.repeat(n, 1)[:, ~hidden])
    tv = 0.5 * (_empirical(draws, hidden_dims) - _exact_conditional(model, x[0], hidden_dims)).abs().sum()
    assert tv < 0.04


def test_mixture_and_autoregressive_completions_match_the_exact_conditional():
    spec = DataSpec("binary", (5,))
    mixture = ppgen.create("mixture", spec, components=3, init_scale=1.5).eval()
    made = ppgen.create("made", spec, hidden_sizes=[16], num_masks=1, order="raster").eval()
    with torch.no_grad():
        for p in made.parameters():
            p.add_(torch.randn_like(p))
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]])
    hidden = torch.tensor([True, False, True, False, False])  # not a prefix: importance resampling
    n = 3000
    for model, start in [(mixture, "exact"), (made, "importance resampling")]:
        draws, info = complete(model, x.repeat(n, 1), hidden, num_particles=64)
        assert info["method"].startswith(start), info["method"]
        tv = 0.5 * (_empirical(draws, [0, 2]) - _exact_conditional(model, x[0], [0, 2])).abs().sum()
        assert tv < 0.05, (model.name, tv)
        exact_log_po = torch.logsumexp(model.log_prob(_all_fills(x[0], [0, 2])).detach().double(), 0)
        gap = (info["log_p_observed"] - exact_log_po).abs()  # an importance estimate: close on average
        assert float(gap.max() if start == "exact" else gap.mean()) < (1e-5 if start == "exact" else 0.05)


def _all_fills(x: torch.Tensor, dims: list) -> torch.Tensor:
    states = x.repeat(2 ** len(dims), 1)
    for code in range(2 ** len(dims)):
        for i, d in enumerate(dims):
            states[code, d] = (code >> i) & 1
    return states


def test_autoregressive_completion_keeps_the_observed_pixels():
    train = ppgen.data.load("digits", "train").subset(200)
    nade = ppgen.create("nade", train, hidden=16)
    x = train.x[:6]
    for mask in ["top", "bottom", "random:0.5"]:
        hidden = hidden_mask(mask, x.shape[1:], 6, seed=1)
        out, info = complete(nade, x, hidden, num_particles=8)
        assert torch.equal(out[~hidden], x[~hidden]) and ((out == 0) | (out == 1)).all()
        metrics = completion_metrics(nade, x, out, hidden, info)
        assert 0 <= metrics["pixel_accuracy"] <= 1
    assert info["method"].startswith("importance resampling")


def test_vae_completion_runs_metropolis_within_gibbs():
    train = ppgen.data.load("digits", "train").subset(64)
    vae = ppgen.create("vae", train)
    hidden = hidden_mask("bottom", (1, 8, 8), 4)
    out, info = complete(vae, train.x[:4], hidden, steps=5, num_particles=4)
    assert info["method"].startswith("Metropolis-within-Gibbs")
    assert torch.equal(out[~hidden], train.x[:4][~hidden]) and info["log_p_observed"].shape == (4,)


@pytest.mark.parametrize(
    "mask, fragment",
    [("middle", "unknown mask"), ("random:1.5", "0 < P < 1"), ("missing.npy", "unknown mask")],
)
def test_bad_masks_raise_one_line(mask, fragment):
    with pytest.raises(ppgen.PPGenError, match=fragment):
        hidden_mask(mask, (1, 8, 8), 2)


def test_complete_cli_writes_the_figure_and_refuses_bad_masks(tmp_path, capsys):
    run = tmp_path / "run"  # a run directory as `ppgen train` writes it, without the evaluation's cost
    run.mkdir()
    train = ppgen.data.load("digits", "train")
    model = ppgen.create("mixture", train, components=4)
    ppgen.fit(model, train, epochs=2, progress=False)
    runs.write_json(run / runs.CONFIG, {"model": "mixture", "data": "digits", "config": model.config})
    runs.save_checkpoint(run / runs.CHECKPOINT, model)
    out = tmp_path / "fig.png"
    assert main(["complete", str(run), "--mask", "bottom", "--out", str(out), "-n", "4"]) == 0
    assert out.stat().st_size > 0 and "pixel accuracy" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["complete", str(run), "--mask", "diagonal", "--out", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown mask" in err[0]


# --- training with missing data ------------------------------------------------------------------------
def test_from_tensor_accepts_nan_only_when_told():
    x = torch.tensor([[0.0, float("nan")], [1.0, 1.0]])
    with pytest.raises(ppgen.PPGenError, match="NaN"):
        ppgen.data.from_tensor(x, "binary")
    assert torch.isnan(ppgen.data.from_tensor(x, "binary", missing=True).x).sum() == 1
    with pytest.raises(ppgen.PPGenError, match="binary"):
        ppgen.data.from_tensor(torch.tensor([[2.0, float("nan")]]), "binary", missing=True)


def test_observed_log_prob_is_the_exact_marginal_of_the_observed_entries():
    spec = DataSpec("binary", (4,))
    mixture = ppgen.create("mixture", spec, components=3, init_scale=1.5)
    independent = ppgen.create("independent", spec)
    with torch.no_grad():
        independent.params.copy_(torch.randn(4))
    x = torch.tensor([[1.0, float("nan"), 0.0, float("nan")], [float("nan"), 1.0, 1.0, 0.0]])
    for model in (mixture, independent):
        got = missing.observed_log_prob(model, x)
        for b in range(2):
            holes = torch.nonzero(torch.isnan(x[b])).flatten().tolist()
            fills = _all_fills(torch.nan_to_num(x[b]), holes)
            assert torch.allclose(got[b], model.log_prob(fills).logsumexp(0), atol=1e-5)


def test_missing_data_training_refuses_other_families_and_lowers_the_loss():
    train = ppgen.data.load("digits", "train").subset(300)
    x = train.x.clone()
    x[torch.rand(x.shape) < 0.3] = float("nan")
    holed = ppgen.data.from_tensor(x, "binary", missing=True)
    with pytest.raises(ppgen.PPGenError, match="cannot train on data with missing entries"):
        missing.fit_missing(ppgen.create("made", train, hidden_sizes=[8]), holed, epochs=1)
    with pytest.raises(ppgen.PPGenError, match="NaN"):
        ppgen.fit(ppgen.create("mixture", train), holed, epochs=1, progress=False)
    vae = ppgen.create("vae", train, prior="standard", hidden=(32,))
    losses = missing.fit_missing(vae, holed, epochs=4, lr=3e-3)
    assert losses[-1] < losses[0] and all(map(math.isfinite, losses))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, config, options",
    [
        ("mixture", {"components": 30}, {"epochs": 60, "lr": 0.05}),
        ("vae", {"prior": "standard"}, {"epochs": 60, "lr": 1e-3}),
    ],
)
def test_thirty_percent_missing_costs_under_one_and_a_half_nats(name, config, options):
    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    x = train.x.clone()
    x[torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.3] = float("nan")
    holed = ppgen.data.from_tensor(x, "binary", missing=True)
    nll = {}
    for label, data in [("complete", train), ("missing", holed)]:  # the same fit, only the data differ
        ppgen.seed_everything(0)
        model = ppgen.create(name, train, **config)
        missing.fit_missing(model, data, generator=torch.Generator().manual_seed(0), **options)
        with torch.no_grad():
            nll[label] = float(-model.evaluation_log_prob(test.x, num_samples=500)[0].mean())
    assert nll["missing"] - nll["complete"] < 1.5, nll


# --- the report's sections --------------------------------------------------------------------------------
def test_uses_section_writes_three_sections_with_figures(tmp_path):
    from ppgen.app.uses_section import uses_section

    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    models = {}
    for name, config in [("independent", {}), ("bayesnet", {"structure": "markov", "order": 1})]:
        models[name] = ppgen.create(name, train, **config)
        ppgen.fit(models[name], train, progress=False)
    per_class = {"independent": classify.fit_per_class("independent", train)}
    out = uses_section(models, train, test, tmp_path, per_class=per_class, n_complete=6)
    assert out["markdown"].count("**What this shows.**") == 3
    assert {p.rsplit("/", 1)[1] for p in out["figures"]} == {
        "uses_roc.png",
        "uses_reject.png",
        "uses_completion.png",
    }
    assert all((tmp_path / p.rsplit("/", 1)[1]).stat().st_size > 0 for p in out["figures"])
    rows = {r["classifier"]: r for r in out["json"]["classification"]["rows"]}
    assert rows["independent (one per class)"]["accuracy"] > 0.8 and "logistic regression" in rows
    assert out["json"]["outliers"]["models"]["bayesnet"]["auroc"]["noise"] > 0.99


# --- completion by diffusion, score and energy models: constructed on a 2-D Gaussian -----------------------
COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]])  # x2 | x1 ~ N(0.8 x1, 0.36)


def _gaussian_in_model_space(model):
    st = model.standardize  # u = (x - shift) / scale: u ~ N(-shift / scale, COV / scale^2)
    return -st.shift / st.scale, COV / st.scale**2


def _construct(name, config):
    data = ppgen.data.from_tensor(torch.randn(2000, 2) @ torch.linalg.cholesky(COV).T, kind="continuous")
    model = ppgen.create(name, data, **config)
    model.initialize(data)
    mu, s = _gaussian_in_model_space(model)
    eye = torch.eye(2)
    if name == "ddpm":  # the exact E[eps | x_t] of Gaussian data: sqrt(1 - abar) C^-1 (x_t - sqrt(abar) mu)
        abar = model.schedule.alphas_cumprod

        def eps(xt, t):
            a = abar[t][:, None]
            c = a[:, :, None] * s + (1 - a[:, :, None]) * eye
            return (1 - a).sqrt() * torch.linalg.solve(c, (xt - a.sqrt() * mu)[..., None])[..., 0]

        model.eps = eps
    elif name == "smld":  # the exact score of the data smoothed at sigma: N(mu, S + sigma^2 I)
        model.score_u = lambda u, sigma: (
            -torch.linalg.solve(s + sigma.reshape(-1, 1, 1) ** 2 * eye, (u - mu)[..., None])[..., 0]
        )
    else:  # the exact energy
        precision = torch.linalg.inv(s)
        model.energy_u = lambda u: 0.5 * (((u - mu) @ precision) * (u - mu)).sum(1)
    return model.eval()


@pytest.mark.parametrize(
    "name, config, method",
    [
        ("ddpm", {"timesteps": 100, "variance": "beta", "hidden": 8}, "RePaint"),
        ("smld", {"hidden": 8, "num_sigmas": 10, "steps_per_sigma": 100, "step_ratio": 0.5}, "annealed"),
        ("ebm", {"hidden": 8, "step_size": 0.01, "sample_steps": 1500}, "SGLD"),
    ],
)
def test_chain_completions_match_the_gaussian_conditional(name, config, method):
    ppgen.seed_everything(0)
    model = _construct(name, config)
    n, x1 = 2000, 1.0
    x = torch.tensor([[x1, 0.0]]).repeat(n, 1)
    out, info = complete(model, x, torch.tensor([False, True]), seed=0, resample=8)
    assert info["method"].startswith(method) and info["log_p_observed"] is None
    assert torch.equal(out[:, 0], x[:, 0])  # the observed coordinate comes back unchanged
    mean, var = float(out[:, 1].mean()), float(out[:, 1].var())
    # sd of the mean of 2000 draws 0.013, of the variance 0.011; RePaint's replacement is approximate
    assert abs(mean - 0.8 * x1) < 0.06 and abs(var - 0.36) < 0.05, (mean, var)


def test_repaint_without_resampling_conditions_worse_than_with():
    ppgen.seed_everything(0)
    model = _construct("ddpm", {"timesteps": 100, "variance": "beta", "hidden": 8})
    x = torch.tensor([[1.0, 0.0]]).repeat(2000, 1)
    hidden = torch.tensor([False, True])
    gaps = [abs(float(complete(model, x, hidden, seed=0, resample=r)[0][:, 1].mean()) - 0.8) for r in (1, 8)]
    assert gaps[1] < gaps[0], gaps


def test_ddpm_and_ebm_complete_digits_keeping_the_observed_pixels():
    train = ppgen.data.load("digits", "train").subset(64)
    hidden = hidden_mask("bottom", (1, 8, 8), 4)
    for name, config in [("ddpm", {"timesteps": 4, "width": 4}), ("ebm", {"hidden": 8, "sample_steps": 5})]:
        model = ppgen.create(name, train, **config)
        model.initialize(train)
        out, info = complete(model, train.x[:4], hidden, resample=1)
        assert torch.equal(out[~hidden], train.x[:4][~hidden]) and ((out == 0) | (out == 1)).all(), name
        assert 0 <= completion_metrics(model, train.x[:4], out, hidden, info)["pixel_accuracy"] <= 1


# --- missing data: Bayes nets marginalize exactly; the CLI asks for --missing ------------------------------
def test_bayes_net_observed_log_prob_is_the_exact_marginal():
    ppgen.seed_everything(0)
    model = BayesNetModel.wrap(BayesNet.markov(6, order=2).randomize(concentration=0.7))
    x = model.sample(4)
    x[0, [1, 3]] = x[1, 0] = float("nan")
    x[3, :5] = float("nan")
    got = model.observed_log_prob(x)
    for b in range(4):
        holes = torch.nonzero(torch.isnan(x[b])).flatten().tolist()
        exact = model.log_prob(_all_fills(torch.nan_to_num(x[b]), holes)).logsumexp(0)
        assert torch.allclose(got[b], exact, atol=1e-5)


@pytest.mark.slow  # 60 full-batch steps of exact enumeration over 3,000 examples: ~6 CPU s
def test_bayes_net_with_thirty_percent_missing_recovers_the_complete_data_cpts():
    ppgen.seed_everything(0)
    truth = BayesNet.markov(6, order=2).randomize(concentration=1.0)
    x = truth.sample(3000).float()
    holed = x.clone()
    holed[torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.3] = float("nan")
    complete_fit = BayesNetModel.wrap(BayesNet.markov(6, order=2))
    complete_fit.net.fit(x)  # counting, the MLE on complete data
    model = BayesNetModel.wrap(BayesNet.markov(6, order=2))  # uniform CPTs to start
    data = ppgen.data.from_tensor(holed, "binary", missing=True)

    def cpts(net):
        return torch.cat([net.cpt(v)[..., 1].flatten() for v in net.variables])

    start = (cpts(model.net) - cpts(complete_fit.net)).abs().mean()
    losses = missing.fit_missing(model, data, epochs=60, batch_size=3000, lr=0.1)
    error = (cpts(model.net) - cpts(complete_fit.net)).abs().detach()
    assert losses[-1] < losses[0] and start > 0.15
    assert float(error.mean()) < 0.03 and float(error.max()) < 0.1, (error.mean(), error.max())


def test_made_refuses_missing_data_in_one_line():
    model = ppgen.create("made", DataSpec("binary", (4,)), hidden_sizes=[8])
    assert "cannot train on data with missing entries" in missing.supports_missing(model)
    assert missing.supports_missing(ppgen.create("bayesnet", DataSpec("binary", (4,)))) is None


def test_train_cli_needs_missing_for_nan_and_then_fits(tmp_path, capsys):
    import numpy as np

    x = ppgen.data.load("digits", "train").x[:200].reshape(200, -1).numpy().copy()
    x[np.random.default_rng(0).random(x.shape) < 0.3] = np.nan
    path = tmp_path / "holes.npy"
    np.save(path, x)
    base = ["train", "mixture", "--data", str(path), "--epochs", "2", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--missing" in err[0] and not (tmp_path / "refused").exists()
    assert main(["train", "made", "--data", str(path), "--missing", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot train on data with missing entries" in err[0]
    assert main([*base, "--missing", "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / runs.METRICS).read_text())
    assert abs(record["missing_fraction_train"] - 0.3) < 0.02 and math.isfinite(
        record["test_observed_nll_nats"]
    )
    assert (tmp_path / "run" / runs.CHECKPOINT).exists() and "test -log p(x_o)" in capsys.readouterr().out


def test_a_users_model_opts_in_by_defining_the_declared_methods():
    from ppgen.base import GenerativeModel

    class Coin(GenerativeModel):  # not registered: p(x) = prod_i Bernoulli(x_i; 1/2)
        name, family, density = "coin", "graphical", "exact"

        def log_prob(self, x, y=None):
            return torch.full((x.shape[0],), -x[0].numel() * math.log(2))

    class OwnCoin(Coin):
        def observed_log_prob(self, x, num_samples=1):
            return -(~torch.isnan(x)).flatten(1).sum(1) * math.log(2)

        def conditional_sample(self, x, hidden, y=None):
            draw = torch.randint(2, x.shape, generator=torch.Generator().manual_seed(0)).float()
            return torch.where(hidden, draw, x), {"method": "own", "log_p_observed": None}

    spec = DataSpec("binary", (3,))
    x, hidden = torch.ones(2, 3), torch.tensor([True, False, False])
    assert "cannot train" in missing.supports_missing(Coin(spec))
    assert complete(Coin(spec), x, hidden, steps=1)[1]["method"].startswith("Gibbs")
    assert missing.supports_missing(OwnCoin(spec)) is None
    out, info = complete(OwnCoin(spec), x, hidden)
    assert info["method"] == "own" and torch.equal(out[:, 1:], x[:, 1:])
