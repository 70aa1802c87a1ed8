"""The adversarial game: discriminator (critic) steps and generator steps with two optimizers.

Each call of ``step`` is one discriminator update on the mini-batch; every ``d_steps``-th call is also
followed by one generator update. The losses, with l = the discriminator's logit and D = sigmoid(l):

- minimax: D maximises V = E_data log D(x) + E_z log(1 - D(G(z))), G minimises E_z log(1 - D(G(z)));
- non-saturating: the same D, G minimises -E_z log D(G(z)) (strong gradients when D rejects G);
- wasserstein-gp: the critic f minimises E_z f(G(z)) - E_data f(x) + lambda E (||grad f(x_hat)|| - 1)^2
  on random interpolates x_hat, G minimises -E_z f(G(z)).

Every step logs the discriminator loss ("loss"), the generator loss, the estimated game value
(V, or the critic's Wasserstein estimate), the discriminator accuracy on real and fake halves and both
gradient norms; ``history`` keeps the per-step rows. Every ``check_every`` epochs, ``end_epoch`` measures
coverage of the data by samples — the VEEGAN mode coverage when ``modes`` are given, else the k-NN
recall of samples against recent real batches — and warns (:class:`ModeCollapseWarning`) when it drops.

References:
    | Generative Adversarial Networks (Goodfellow et al., 2014) https://arxiv.org/abs/1406.2661
    | Improved Training of Wasserstein GANs (Gulrajani et al., 2017) https://arxiv.org/abs/1704.00028
"""

import warnings

import torch
from torch import Tensor
from torch.nn import functional as F

from ppgen.errors import PPGenError
from ppgen.inference.objective import Objective, gradient_step, register_objective
from ppgen.metrics import knn_precision_recall, mode_coverage

__all__ = [
    "AdversarialObjective",
    "ModeCollapseWarning",
    "discriminator_losses",
    "generator_loss",
    "gradient_penalty",
]


class ModeCollapseWarning(UserWarning):
    r"""The generator's samples cover markedly less of the data than they did before."""


def discriminator_losses(loss: str, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    r"""The discriminator's loss (without penalty) and the game value it estimates.

    Arguments:
        loss: "minimax", "non-saturating" or "wasserstein-gp".
        real: logits (scores) of data, (B,).
        fake: logits (scores) of samples, (B',).

    Returns:
        (loss to minimise, value): for the GAN losses value = E log D(x) + E log(1 - D(G(z))) = -loss
        (-log 4 at the optimum when p_g = p_data); for WGAN value = E f(x) - E f(G(z)) (the W1 estimate).
    """
    if loss == "wasserstein-gp":
        value = real.mean() - fake.mean()
        return -value, value
    value = -F.softplus(-real).mean() - F.softplus(fake).mean()  # log sigmoid(l) = -softplus(-l)
    return -value, value


def generator_loss(loss: str, fake: Tensor) -> Tensor:
    r"""The generator's loss from the logits (scores) of its samples, fake: (B,)."""
    if loss == "minimax":
        return -F.softplus(fake).mean()  # E log(1 - D) = -E softplus(l)
    if loss == "non-saturating":
        return F.softplus(-fake).mean()  # -E log D
    return -fake.mean()


def gradient_penalty(critic, real: Tensor, fake: Tensor, y: Tensor | None = None) -> Tensor:
    r"""E (||grad_x critic(x_hat)||_2 - 1)^2 on x_hat = e real + (1 - e) fake, e ~ U[0, 1] per example.

    Arguments:
        critic: a function (B, *shape), (B,) labels -> (B,) scores.
        real: (B, *shape) standardised data.
        fake: (B, *shape) standardised samples.
    """
    e = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), dtype=real.dtype, device=real.device)
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat, y).sum(), x_hat, create_graph=True)
    return ((grad.reshape(len(grad), -1).norm(dim=1) - 1) ** 2).mean()


@register_objective("adversarial")
class AdversarialObjective(Objective):
    r"""Two Adam optimizers, "discriminator" and "generator", playing the model's ``loss``.

    Options (each defaults to the model's ``fit_defaults`` entry of the same name, else the value shown):
        d_steps: discriminator steps per generator step (1).
        gp_weight: lambda of the gradient penalty (wasserstein-gp) (0).
        betas: Adam's betas for both players ((0.5, 0.999)).
        d_lr: the discriminator's learning rate (None: ``lr`` times ``d_lr_scale``).
        d_lr_scale: see ``d_lr`` (1).
        lr_decay: multiply both learning rates by this after each epoch (1).
        train_generator: False freezes G (e.g. to fit D to a fixed p_g) (True).
        clip_norm: clip both players' gradient norms (None).
        check_every: measure coverage every this many epochs (0: never) (5).
        modes: (K, D) known mode centres for the VEEGAN coverage check; with ``mode_std`` (None).
        mode_std: the modes' standard deviation (None).
        collapse_drop: warn when coverage falls this much (absolute) below its best so far (0.25).
        n_check: samples (and remembered real examples) for the coverage check (2500).
    """

    defaults = {
        **Objective.defaults,
        "d_steps": 1,
        "gp_weight": 0.0,
        "betas": (0.5, 0.999),
        "d_lr": None,
        "d_lr_scale": 1.0,
        "train_generator": True,
        "clip_norm": None,
        "check_every": 5,
        "modes": None,
        "mode_std": None,
        "collapse_drop": 0.25,
        "n_check": 2500,
    }

    def __init__(self, model, lr: float, **options):
        super().__init__(model, lr, **options)
        o = self.options
        self.loss = model.loss
        self.d_steps = int(o["d_steps"])
        self.gp_weight = float(o["gp_weight"])
        if self.d_steps < 1:
            raise PPGenError(f"d_steps must be a positive integer, got {self.d_steps}")
        if (o["modes"] is None) != (o["mode_std"] is None):
            raise PPGenError("give both modes (K, D) and mode_std for the mode-coverage check, or neither")
        self.train_generator = o["train_generator"]
        self.clip_norm = o["clip_norm"]
        self.check_every = o["check_every"]
        self.modes, self.mode_std = o["modes"], o["mode_std"]
        self.collapse_drop = o["collapse_drop"]
        self.n_check = o["n_check"]
        betas = tuple(o["betas"])
        d_lr = o["d_lr"] or lr * o["d_lr_scale"]
        self.optimizers["discriminator"] = torch.optim.Adam(
            model.discriminator_parameters(), lr=d_lr, betas=betas
        )
        self.optimizers["generator"] = torch.optim.Adam(model.generator_parameters(), lr=lr, betas=betas)
        self.calls = 0
        self.epochs = 0
        self.history: list[dict] = []
        self.best_coverage = None
        self.real_memory: list[Tensor] = []
        self._last_g = {}

    def state_dict(self) -> dict:
        r"""The optimizers' state and the game's counters, so that a resumed fit plays the same moves."""
        state = super().state_dict()
        state["game"] = {
            "calls": self.calls,
            "epochs": self.epochs,
            "best_coverage": self.best_coverage,
            "last_g": dict(self._last_g),
        }
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "game" in state:
            game = state["game"]
            self.calls, self.epochs = game["calls"], game["epochs"]
            self.best_coverage, self._last_g = game["best_coverage"], dict(game["last_g"])

    def _fake(self, x: Tensor, y: Tensor | None) -> Tensor:
        return self.model.model(x, y if self.model.conditional else None)  # the Pyro program's x

    def step(self, x: Tensor, y: Tensor | None) -> dict:
        model = self.model
        y = y if model.conditional else None
        self._remember(x)

        # discriminator / critic step, on standardised inputs
        with torch.no_grad():
            fake = self._fake(x, y)
        h_real, h_fake = model.standardize(x), model.standardize(fake)
        real_score, fake_score = model.critic(h_real, y), model.critic(h_fake, y)
        d_loss, value = discriminator_losses(self.loss, real_score, fake_score)
        logs = {"value": value.item()}
        if self.gp_weight > 0:
            gp = gradient_penalty(model.critic, h_real, h_fake, y)
            d_loss = d_loss + self.gp_weight * gp
            logs["gradient_penalty"] = gp.item()
        d_norm = gradient_step(
            self.optimizers["discriminator"], d_loss, model.discriminator_parameters(), self.clip_norm
        )
        threshold = (
            0.0 if self.loss != "wasserstein-gp" else 0.5 * (real_score.mean() + fake_score.mean()).item()
        )
        logs.update(
            loss=d_loss.item(),
            d_loss=d_loss.item(),
            d_grad_norm=d_norm,
            d_acc_real=(real_score > threshold).float().mean().item(),
            d_acc_fake=(fake_score < threshold).float().mean().item(),
        )
        logs["d_acc"] = 0.5 * (logs["d_acc_real"] + logs["d_acc_fake"])

        # generator step, every d_steps discriminator steps
        self.calls += 1
        if self.train_generator and self.calls % self.d_steps == 0:
            g_loss = generator_loss(self.loss, model.discriminate(self._fake(x, y), y))
            g_norm = gradient_step(
                self.optimizers["generator"], g_loss, model.generator_parameters(), self.clip_norm
            )
            self._last_g = {"g_loss": g_loss.item(), "g_grad_norm": g_norm}
        logs.update(self._last_g)
        self.history.append(logs)
        return logs

    def _remember(self, x: Tensor) -> None:
        if self.check_every:
            self.real_memory.append(x.detach())
            while sum(len(t) for t in self.real_memory) - len(self.real_memory[0]) >= self.n_check:
                self.real_memory.pop(0)

    @torch.no_grad()
    def coverage(self) -> dict:
        r"""The fraction of the data the generator covers: modes covered / K when ``modes`` are known,
        else the k-NN recall of ``n_check`` samples against the remembered real examples."""
        model = self.model
        was_training = model.training
        model.eval()
        samples = model.sample(self.n_check)
        model.train(was_training)
        if self.modes is not None:
            m = mode_coverage(samples.reshape(len(samples), -1), self.modes, self.mode_std)
            return {
                "coverage": m["modes_covered"] / m["modes_total"],
                "modes_covered": m["modes_covered"],
                "hq_fraction": m["hq_fraction"],
            }
        real = torch.cat(self.real_memory)[-self.n_check :]
        pr = knn_precision_recall(model.standardize(real), model.standardize(samples))
        return {"coverage": pr["recall"], "precision": pr["precision"]}

    def end_epoch(self) -> dict:
        logs = super().end_epoch()
        self.epochs += 1
        if not self.check_every or self.epochs % self.check_every or not self.real_memory:
            return logs
        logs.update(self.coverage())
        c = logs["coverage"]
        if self.best_coverage is not None and c < self.best_coverage - self.collapse_drop:
            what = (
                f"{logs['modes_covered']} of {len(self.modes)} modes"
                if self.modes is not None
                else f"k-NN recall {c:.2f}"
            )
            warnings.warn(
                f"{self.model.name}: possible mode collapse at epoch {self.epochs}: samples cover {what} "
                f"(best so far {self.best_coverage:.2f})",
                ModeCollapseWarning,
                stacklevel=2,
            )
            logs["collapse_warning"] = 1.0
        self.best_coverage = c if self.best_coverage is None else max(self.best_coverage, c)
        return logs
