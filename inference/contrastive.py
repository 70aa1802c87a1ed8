"""Contrastive divergence for energy-based models: SGLD negatives restarted from a replay buffer.

The gradient of the maximum-likelihood loss of p = exp(-E) / Z is
grad E(x+) averaged over data minus grad E(x-) averaged over model samples. Model samples come from
short SGLD chains that start, with probability 1 - ``reinit``, where earlier chains ended (the
replay buffer: persistent chains in effect) and otherwise from uniform noise over the data's box.
Before the SGLD steps every chain makes one Metropolis-Hastings jump proposed from a kernel density
estimate of the buffer (:func:`~ppgen.estimators.langevin.kde_jump`): without it no chain ever
leaves the mode it fell into, the share of negatives per mode is set by basin sizes, and contrastive
divergence digs some modes ever deeper (their depths are not identified by chains that do not mix).
An L2 penalty alpha (E(x+)^2 + E(x-)^2) keeps the energies near zero, so training stays stable
(Du & Mordatch, 2019).

References:
    | Training Products of Experts by Minimizing Contrastive Divergence (Hinton, 2002)
    | Implicit Generation and Generalization in Energy-Based Models (Du & Mordatch, 2019)
    | https://arxiv.org/abs/1903.08689
"""

import torch
from torch import Tensor

from ppgen.errors import PPGenError
from ppgen.estimators.langevin import kde_jump, sgld
from ppgen.inference.objective import Objective, gradient_step, register_objective

__all__ = ["ReplayBuffer", "ContrastiveDivergence"]


class ReplayBuffer:
    r"""A fixed-capacity store of past chain ends, overwritten at random once full.

    Arguments:
        capacity: the number of states kept.

    Example:
        >>> buf = ReplayBuffer(4)
        >>> buf.push(torch.zeros(3, 2)); len(buf)
        3
        >>> buf.push(torch.ones(3, 2)); len(buf)
        4
        >>> buf.sample(2).shape
        torch.Size([2, 2])
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise PPGenError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.states: Tensor | None = None
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def push(self, x: Tensor) -> None:
        r"""Stores the states x (B, *shape): appended while there is room, then over random slots."""
        x = x.detach()
        if self.states is None:
            self.states = torch.empty(self.capacity, *x.shape[1:], device=x.device, dtype=x.dtype)
        room = min(self.capacity - self.size, x.shape[0])
        self.states[self.size : self.size + room] = x[:room]
        self.size += room
        rest = x[room:]
        if len(rest):
            slots = torch.randint(self.size, (len(rest),), device=x.device)
            self.states[slots] = rest

    def sample(self, n: int) -> Tensor:
        r"""n stored states drawn uniformly with replacement, (n, *shape)."""
        if self.size == 0:
            raise PPGenError("the replay buffer is empty; push states first")
        idx = torch.randint(self.size, (n,), device=self.states.device)
        return self.states[idx].clone()


@register_objective("contrastive")
class ContrastiveDivergence(Objective):
    r"""Persistent contrastive divergence with SGLD negatives and a replay buffer, Adam(beta1 = 0).

    The model provides ``prepare(x) -> u`` (its working space), ``energy_u(u)`` (B,),
    ``noise_u(n, like)`` (uniform starting points over the data's box) and ``sampler`` (a dict of
    SGLD settings: ``step_size``, ``noise_scale``, ``grad_clip``, ``train_steps``, ``jump_bandwidth``;
    a bandwidth of None skips the jumps).

    Options:
        alpha: weight of the energy-magnitude penalty (default 0.01; it also keeps the depths of modes
            that no chain visits from drifting).
        reinit: probability that a chain restarts from noise (default 0.05).
        buffer_size: replay-buffer capacity (default 10,000).
        clip_norm: clip the gradient norm (default 1.0; 0 disables).

    The logs: "loss" (CD loss + penalty), "cd" = mean E(x+) - mean E(x-), "energy_pos", "energy_neg",
    "jump_rate" (the acceptance rate of the jumps).
    """

    defaults = {**Objective.defaults, "alpha": 0.01, "reinit": 0.05, "buffer_size": 10_000, "clip_norm": 1.0}

    def __init__(self, model, lr: float, **options):
        super().__init__(model, lr, **options)
        alpha, reinit, buffer_size, clip_norm = (
            self.options[k] for k in ("alpha", "reinit", "buffer_size", "clip_norm")
        )
        if not 0 <= reinit <= 1:
            raise PPGenError(f"reinit must be a probability in [0, 1], got {reinit}")
        self.alpha = alpha
        self.reinit = reinit
        self.clip_norm = clip_norm
        self.buffer = ReplayBuffer(buffer_size)
        self.jump_rate = 0.0
        self.optimizers["adam"] = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.0, 0.999))

    def state_dict(self) -> dict:
        r"""The optimizer's state and the replay buffer's chains, so that a resumed fit keeps its chains."""
        state = super().state_dict()
        if len(self.buffer):
            state["replay_buffer"] = self.buffer.states[: len(self.buffer)].detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "replay_buffer" in state:
            self.buffer = ReplayBuffer(self.buffer.capacity)
            self.buffer.push(state["replay_buffer"].to(self.model.device))

    def negatives(self, like: Tensor) -> Tensor:
        r"""Chain starts (buffer or noise) run through the model's SGLD; pushed back to the buffer."""
        n = like.shape[0]
        start = self.model.noise_u(n, like)
        if len(self.buffer):
            keep = torch.rand(n, device=like.device) >= self.reinit
            if keep.any():
                start[keep] = self.buffer.sample(int(keep.sum())).to(like.device)
        cfg = self.model.sampler
        if cfg.get("jump_bandwidth") and len(self.buffer):
            start, self.jump_rate = kde_jump(
                self.model.energy_u, start, self.buffer.states[: len(self.buffer)], cfg["jump_bandwidth"]
            )
        x = sgld(
            self.model.energy_u,
            start,
            cfg["train_steps"],
            cfg["step_size"],
            cfg["noise_scale"],
            cfg["grad_clip"],
        )
        self.buffer.push(x)
        return x

    def step(self, x, y):
        pos = self.model.prepare(x)
        was_training = self.model.training
        self.model.eval()
        neg = self.negatives(pos)
        self.model.train(was_training)
        e_pos, e_neg = self.model.energy_u(pos), self.model.energy_u(neg)
        cd = e_pos.mean() - e_neg.mean()
        loss = cd + self.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        norm = gradient_step(self.optimizers["adam"], loss, self.model.parameters(), self.clip_norm)
        return {
            "loss": loss.item(),
            "cd": cd.item(),
            "energy_pos": e_pos.mean().item(),
            "energy_neg": e_neg.mean().item(),
            "jump_rate": self.jump_rate,
            "grad_norm": norm,
        }
