"""Data-parallel training with ``torch.distributed``: one model replica per process, one shard of every
batch per replica, gradients averaged by an all-reduce.

:func:`ppgen.fit` turns data-parallel by itself when a process group with more than one process is
initialized (:func:`init_from_env`, which ``ppgen train --nproc N`` and ``torchrun`` lead to): the
trainer hands its objective to :func:`attach` and its batches to :func:`shard`, and ``gradient_step``
calls :func:`sync_gradients` between backward and clipping. Nothing else in the objectives changes.

Why not ``DistributedDataParallel``: Pyro's losses (``Trace_ELBO.differentiable_loss``), the critic's
gradient penalty and the SGLD chains do not run through one module's ``forward``, and the adversarial
objective steps two optimizers per batch; DDP's reducer assumes one forward and one backward per step.
An explicit all-reduce after each backward is correct for every objective and costs one bucket per step.

What the processes share and what each keeps:

- Data: every rank draws the same global permutation (and dynamic binarization) from the same seed, so
  the global batches are those of one process; rank r takes the r-th of ``world_size`` contiguous
  chunks (sizes differ by at most one). A last batch smaller than ``world_size`` is dropped.
- Gradients: each rank's mean-loss gradient times its shard size, summed over ranks, over the global
  batch size: the gradient of the global batch's mean loss, before clipping, so ``clip_norm`` and the
  logged ``grad_norm`` are the global ones.
- Noise: each rank draws its objective's noise (latents, diffusion steps, GAN codes, SGLD) from its own
  stream, seeded from the run's seed and the rank; the shared stream keeps to the data order. The streams
  are saved in the checkpoint, so a resume with the same number of processes continues them.
- Logs: the per-step logs are averaged over ranks, weighted by shard size (what one process would log);
  so the training guard decides the same on every rank. Time budgets use the slowest rank's clock.
- Model: after ``initialize(data)`` (run by every rank on the whole training split) rank 0's parameters,
  buffers and weight average are broadcast; layers that initialize themselves from their first training
  input (:class:`~ppgen.flows.ActNorm`, marked by an ``initialized`` buffer) see the first global batch,
  as in one process; buffers (e.g. BatchNorm statistics) are broadcast from rank 0 after every epoch.

Per objective, beyond the averaged gradients:

=================  ===========================================================================
objective          synchronized
=================  ===========================================================================
elbo               nothing more (maximum likelihood, SVI, enumerated marginals alike)
annealed-elbo      the data-noise scale: the std of the first global batch (as in one process)
counting           no gradients: the sufficient statistics are summed over ranks before each epoch's update
reconstruction     the code moments (count, sum, outer products) summed before the code Gaussian's refit
denoising          nothing more (the per-step learning-rate schedule advances alike on every rank)
dsm                nothing more
adversarial        both players' gradients at each of their steps; the step counters agree by
                   construction; the coverage check uses rank 0's samples against rank 0's shard
contrastive        each rank keeps its own replay buffer (chains of its shard's negatives); every rank's
                   buffer is saved in the checkpoint and restored to it on resume
weight average     nothing: it averages identical replicas (broadcast once at the start)
=================  ===========================================================================

With the same global batch and seed, N processes reproduce one process's parameters (to float
tolerance) for the objectives whose step is a deterministic function of the batch (maximum likelihood,
enumerated SVI, counting); for the others the noise differs from one process's, as it must between
independent streams, and the replicas stay identical.
"""

import contextlib
import datetime
import os
import socket
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist

from ppgen.errors import PPGenError

__all__ = [
    "DataParallel",
    "attach",
    "shard",
    "sync_gradients",
    "init_from_env",
    "env_world",
    "is_active",
    "free_port",
    "shard_bounds",
]

TIMEOUT = datetime.timedelta(minutes=10)  # a collective that waits longer than this fails
_ACTIVE: "DataParallel | None" = None  # the objective whose step is running, for gradient_step's hook


def env_world() -> tuple[int, int, int]:
    r"""(rank, world_size, local_rank) as torchrun sets them in the environment; (0, 1, 0) otherwise."""
    try:
        names = (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0))
        return tuple(int(os.environ.get(k, d)) for k, d in names)
    except ValueError:
        raise PPGenError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None


def is_active() -> bool:
    r"""True when a process group of more than one process is initialized."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def free_port() -> int:
    r"""A TCP port that is free on this machine now (for ``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_from_env(device: torch.device) -> torch.device:
    r"""Joins the process group that ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` describe.

    The backend is ``nccl`` for a CUDA device, ``gloo`` otherwise; on CUDA each process takes the GPU
    ``LOCAL_RANK``.

    Arguments:
        device: the device the user asked for.

    Returns:
        The device of this process (``cuda:LOCAL_RANK`` on CUDA).
    """
    rank, world, local = env_world()
    if dist.is_initialized():
        return device
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise PPGenError(f"WORLD_SIZE={world} but {' and '.join(missing)} not set; launch with torchrun")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise PPGenError(f"LOCAL_RANK {local}, but this machine has {torch.cuda.device_count()} GPU(s)")
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=TIMEOUT)
    return device


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    r"""[start, stop) of rank's contiguous chunk of n examples (``torch.tensor_split``'s sizes).

    Example:
        >>> [shard_bounds(5, r, 2) for r in range(2)]
        [(0, 3), (3, 5)]
    """
    q, m = divmod(n, world)
    start = rank * q + min(rank, m)
    return start, start + q + (rank < m)


def _seed_state(seed: int) -> torch.Tensor:
    g = torch.Generator()
    g.manual_seed(seed % (2**63 - 1))
    return g.get_state()


class DataParallel:
    r"""An objective on one rank of a data-parallel fit: shards, averages, keeps its own noise stream.

    Attribute reads fall through to the wrapped objective (``optimizers``, ``model``, ``average``, ...).

    Arguments:
        objective: the rank's :class:`~ppgen.inference.objective.Objective`, initialized and loaded.
        clock: the trainer's clock.
        state: the objective state the fit resumes from (its ``data_parallel`` part restores this rank's
            noise stream and replay buffer when the number of processes is the same), or None.
    """

    def __init__(self, objective, clock: Callable[[], float], state: dict | None = None):
        self.inner = objective
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.device = objective.model.device
        self.name = getattr(objective, "objective_name", type(objective).__name__)
        self._clock, self._base = clock, clock()
        self.elapsed = 0.0  # the slowest rank's seconds at the last collective
        self.n_local = 0
        self.first, self.first_seen = None, False  # the first global batch, for lazily initialized layers
        self.gathered = None  # every rank's own state, gathered at the end of the last epoch
        self._broadcast_model()
        saved = (state or {}).get("data_parallel")
        own = saved["ranks"][self.rank] if saved and saved.get("world_size") == self.world else None
        self.noise = own["noise"] if own else _seed_state(torch.initial_seed() * 1_000_003 + self.rank + 1)
        self.cuda_noise = None
        if self.device.type == "cuda":
            outer = torch.cuda.get_rng_state(self.device)
            torch.cuda.manual_seed(torch.initial_seed() * 1_000_003 + self.rank + 1)
            self.cuda_noise = own["cuda_noise"] if own and "cuda_noise" in own else torch.cuda.get_rng_state()
            torch.cuda.set_rng_state(outer, self.device)
        if own and self.name in RANK_STATE:
            RANK_STATE[self.name][1](self, own)

    def __getattr__(self, name):
        return getattr(self.__dict__["inner"], name)

    @torch.no_grad()
    def _broadcast_model(self) -> None:
        r"""Rank 0's parameters, buffers and weight average to every rank."""
        model, average = self.inner.model, self.inner.average
        tensors = [*model.parameters(), *model.buffers(), *(average.held if average is not None else [])]
        for t in tensors:
            if t.dtype != torch.bool:
                dist.broadcast(t.data, 0)

    def clock(self) -> float:
        r"""The trainer's clock as all ranks agree on it: the slowest rank's at the last collective."""
        return self._base + self.elapsed

    @contextlib.contextmanager
    def _own_noise(self):
        global _ACTIVE
        outer = torch.get_rng_state()
        torch.set_rng_state(self.noise)
        if self.cuda_noise is not None:
            cuda_outer = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(self.cuda_noise, self.device)
        _ACTIVE = self
        try:
            yield
        finally:
            _ACTIVE = None
            self.noise = torch.get_rng_state()
            torch.set_rng_state(outer)
            if self.cuda_noise is not None:
                self.cuda_noise = torch.cuda.get_rng_state(self.device)
                torch.cuda.set_rng_state(cuda_outer, self.device)

    def shard(self, batches: Iterable):
        r"""This rank's chunk of every global batch (batches smaller than the world are dropped)."""
        for x, y in batches:
            if len(x) < self.world:
                continue
            if not self.first_seen:
                self.first, self.first_seen = (x, y), True
            lo, hi = shard_bounds(len(x), self.rank, self.world)
            yield x[lo:hi], None if y is None else y[lo:hi]

    def step(self, x, y) -> dict:
        self.n_local = x.shape[0]
        if self.first is not None:  # on the shared stream: any noise it draws is the same on every rank
            xg, yg = (None if t is None else t.to(self.device) for t in self.first)
            self.first = None
            if _lazy_initialization(self, xg, yg):
                self._broadcast_model()  # and rank 0's result, whatever the device's arithmetic did
            if self.name in FIRST_BATCH:
                FIRST_BATCH[self.name](self, xg, yg)
        with self._own_noise():
            logs = self.inner.step(x, y)
        return self._average_logs(logs)

    def _average_logs(self, logs: dict) -> dict:
        keys = sorted(logs)
        local = [self.n_local, self._clock() - self._base, *(float(logs[k]) for k in keys)]
        mine = torch.tensor(local, dtype=torch.float64, device=self.device)
        rows = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(rows, mine)
        table = torch.stack(rows)  # (world, 2 + K)
        weights = table[:, 0] / table[:, 0].sum()
        self.elapsed = float(table[:, 1].max())
        means = (weights[:, None] * table[:, 2:]).sum(0).tolist()
        return dict(zip(keys, means))

    def average_gradients(self, params: list) -> None:
        r"""Replaces each gradient by the global batch's: sum over ranks of n_r grad_r, over sum of n_r."""
        by_dtype: dict = {}
        for p in params:
            by_dtype.setdefault(p.grad.dtype, []).append(p)
        for _, group in sorted(by_dtype.items(), key=lambda kv: str(kv[0])):
            flat = torch.cat([p.grad.reshape(-1) for p in group] + [group[0].grad.new_ones(1)])
            flat.mul_(self.n_local)
            dist.all_reduce(flat)
            flat = flat[:-1] / flat[-1]
            offset = 0
            for p in group:
                p.grad.copy_(flat[offset : offset + p.grad.numel()].view_as(p.grad))
                offset += p.grad.numel()

    def end_epoch(self) -> dict:
        if self.name in BEFORE_END_EPOCH:
            BEFORE_END_EPOCH[self.name](self)
        with self._own_noise():
            logs = self.inner.end_epoch()
        with torch.no_grad():
            for b in self.inner.model.buffers():
                if b.dtype.is_floating_point:
                    dist.broadcast(b.data, 0)
        own = {"noise": self.noise}
        if self.cuda_noise is not None:
            own["cuda_noise"] = self.cuda_noise
        if self.name in RANK_STATE:
            own.update(RANK_STATE[self.name][0](self))
        own["elapsed"] = self._clock() - self._base
        gathered = [None] * self.world
        dist.all_gather_object(gathered, own)
        self.elapsed = max(g.pop("elapsed") for g in gathered)
        self.gathered = gathered
        return logs

    def state_dict(self) -> dict:
        r"""The objective's state (rank 0's) and every rank's own part, as gathered at the last epoch end."""
        state = self.inner.state_dict()
        if self.gathered is not None:
            state["data_parallel"] = {"world_size": self.world, "ranks": self.gathered}
        return state


def _global_noise_scale(dp: DataParallel, x: torch.Tensor, y) -> None:
    r"""annealed-elbo: the data-noise scale is the std of the first *global* batch, not of the shard."""
    inner = dp.inner
    if inner.noise_scale is None and inner.data_noise > 0:
        inner.noise_scale = x.std(0) if x.shape[0] > 1 else torch.ones_like(x[0])


@torch.no_grad()
def _lazy_initialization(dp: DataParallel, x: torch.Tensor, y) -> bool:
    r"""Layers that initialize themselves from their first training input (ActNorm: an ``initialized``
    buffer) see the first global batch, as in one process, not each rank its shard. True if any did."""
    model = dp.inner.model
    lazy = [m for m in model.modules() if isinstance(getattr(m, "initialized", None), torch.Tensor)]
    if not any(not bool(m.initialized) for m in lazy):
        return False
    model.log_prob(x, y if model.conditional else None)
    return True


def _sum_statistics(dp: DataParallel) -> None:
    r"""counting: the epoch's sufficient statistics are sums, so the global ones are their sum over ranks."""
    for key in sorted(dp.inner.stats or {}):
        dist.all_reduce(dp.inner.stats[key])


def _sum_code_moments(dp: DataParallel) -> None:
    r"""reconstruction: count, sum and outer products of the codes summed over ranks."""
    inner = dp.inner
    count = torch.tensor([float(inner.count)], dtype=torch.float64, device=dp.device)
    dist.all_reduce(count)
    if isinstance(inner.total, torch.Tensor):
        dist.all_reduce(inner.total)
        dist.all_reduce(inner.outer)
    inner.count = int(count.item())


def _save_buffer(dp: DataParallel) -> dict:
    buffer = dp.inner.buffer
    return {"replay_buffer": buffer.states[: len(buffer)].detach().cpu().clone()} if len(buffer) else {}


def _load_buffer(dp: DataParallel, own: dict) -> None:
    if "replay_buffer" in own:
        buffer = type(dp.inner.buffer)(dp.inner.buffer.capacity)
        buffer.push(own["replay_buffer"].to(dp.device))
        dp.inner.buffer = buffer


FIRST_BATCH = {"annealed-elbo": _global_noise_scale}
BEFORE_END_EPOCH = {"counting": _sum_statistics, "reconstruction": _sum_code_moments}
RANK_STATE = {"contrastive": (_save_buffer, _load_buffer)}


def attach(objective, clock: Callable[[], float], state: dict | None = None):
    r"""``(objective, clock)`` for the trainer: wrapped in :class:`DataParallel` when a process group of
    more than one process is active, unchanged otherwise."""
    if not is_active():
        return objective, clock
    wrapped = DataParallel(objective, clock, state)
    return wrapped, wrapped.clock


def shard(objective, batches: Iterable) -> Iterable:
    r"""The batches of this rank (``objective`` from :func:`attach`): all of them in one process."""
    return objective.shard(batches) if isinstance(objective, DataParallel) else batches


def sync_gradients(params: list) -> None:
    r"""Averages the gradients of ``params`` over ranks while a data-parallel step runs; else nothing."""
    if _ACTIVE is not None and params:
        _ACTIVE.average_gradients(params)
