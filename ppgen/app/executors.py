"""Where the cells of ``ppgen compare`` run: this machine's process pool, Ray tasks, or Slurm jobs.

``local`` is the process pool of :func:`~ppgen.app.grid.run_grid`. The other two run each cell (one
model, one seed) as one remote unit of work through an established engine:

- ``ray``: one Ray task a cell (one CPU, one torch thread), on the cluster at ``--address`` or on a
  local instance with this machine's cores;
- ``slurm``: one Slurm job a cell, submitted as one array job by submitit (``AutoExecutor``; its
  ``local`` and ``debug`` clusters run the same jobs on this machine, for tests).

Every cell writes its run into the run cache itself (:mod:`ppgen.app.cache`) and hands its row back, so
a grid that stops part-way keeps what finished: the same command again reruns only the missing cells
and rebuilds the report. On a cluster the cache must be on a file system every node sees: set
``PPGEN_CACHE``. A cell whose task or job dies becomes a row with its ``error``; the others stay.

Ray and submitit are optional extras (``pip install 'ppgen[ray]'``, ``'ppgen[slurm]'``); asking for an
executor whose package is missing is one line that says what to install.
"""

import importlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ppgen.errors import PPGenError

__all__ = ["EXECUTORS", "RayExecutor", "SlurmExecutor", "make_executor", "require"]

EXECUTORS = ("local", "ray", "slurm")
EXTRAS = {"ray": ("ray", "Ray"), "submitit": ("slurm", "submitit")}


def require(module: str):
    r"""Imports an optional package, or raises a :class:`PPGenError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra, label = EXTRAS[module]
        raise PPGenError(
            f"--executor {extra} needs {label}, which is not installed: pip install 'ppgen[{extra}]'"
        ) from None


def _one_thread(fn, *args):
    r"""Runs ``fn(*args)`` on one torch thread, as the local pool's workers do."""
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    return fn(*args)


class RayExecutor:
    r"""Each cell a Ray task of one CPU.

    Arguments:
        address: a running cluster's address (``ray://host:10001``, ``host:6379`` or ``auto``); None
            starts a local instance with ``num_cpus`` CPUs, shut down again after the grid.
        num_cpus: CPUs of the local instance (default: the cores this process may use).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.ray = require("ray")
        self.address, self.num_cpus = address, num_cpus

    def run(self, fn, cells: list, shared: tuple) -> Iterator[tuple[int, object, BaseException | None]]:
        r"""Runs ``fn(cell, *shared)`` for every cell; yields ``(index, result, error)`` as they finish."""
        ray = self.ray
        started = not ray.is_initialized()
        if started:
            options = {"address": self.address} if self.address else {"num_cpus": self.num_cpus}
            ray.init(**options, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            task = ray.remote(num_cpus=1, max_retries=0)(_one_thread)
            refs = [ray.put(x) for x in shared]  # the data sets once, not once a task
            pending = {task.remote(fn, cell, *refs): i for i, cell in enumerate(cells)}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                try:
                    yield i, ray.get(done[0]), None
                except Exception as e:  # the task died (worker lost, out of memory): this cell only
                    yield i, None, e
        finally:
            if started:
                ray.shutdown()


@dataclass
class SlurmOptions:
    r"""What ``--slurm-*`` asks of each job (see submitit's ``AutoExecutor.update_parameters``)."""

    partition: str | None = None
    time_min: int = 60
    cpus: int = 1
    gpus: int = 0
    mem_gb: float | None = None
    cluster: str | None = None  # None: Slurm where sbatch exists, else local; "local"/"debug" for tests
    array_parallelism: int = 256


class SlurmExecutor:
    r"""The cells as one Slurm array job (one task a cell), through submitit.

    Arguments:
        folder: where submitit keeps each job's pickles and logs (``OUT/slurm``).
        options: partition, time limit, CPUs, GPUs, memory of each job.
    """

    name = "slurm"

    def __init__(self, folder: Path, options: SlurmOptions | None = None):
        self.submitit = require("submitit")
        self.folder, self.options = Path(folder), options or SlurmOptions()

    def executor(self):
        o = self.options
        executor = self.submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=o.cluster)
        params = {"timeout_min": o.time_min, "cpus_per_task": o.cpus, "name": "ppgen-compare"}
        if o.gpus:
            params["gpus_per_node"] = o.gpus
        if o.mem_gb:
            params["mem_gb"] = o.mem_gb
        if o.partition:
            params["slurm_partition"] = o.partition
        if executor.cluster == "slurm":
            params["slurm_array_parallelism"] = o.array_parallelism
        executor.update_parameters(**params)
        return executor

    def run(self, fn, cells: list, shared: tuple) -> Iterator[tuple[int, object, BaseException | None]]:
        r"""Runs ``fn(cell, *shared)`` for every cell; yields ``(index, result, error)`` as they finish."""
        executor = self.executor()
        columns = [[x] * len(cells) for x in shared]
        jobs = executor.map_array(_one_thread, [fn] * len(cells), cells, *columns)
        pending = dict(enumerate(jobs))
        while pending:
            for i, job in list(pending.items()):
                if executor.cluster != "debug" and not job.done():
                    continue
                del pending[i]
                try:
                    yield i, job.result(), None
                except Exception as e:  # the job failed, timed out or was cancelled: this cell only
                    yield i, None, e
            if pending:
                time.sleep(0.5)


def make_executor(name: str, out: Path, address: str | None = None, jobs: int | None = None,
                  slurm: SlurmOptions | None = None):  # fmt: skip
    r"""The executor ``--executor`` names: None for ``local`` (the grid's own process pool)."""
    if name not in EXECUTORS:
        raise PPGenError(f"unknown executor {name!r}; expected one of: {', '.join(EXECUTORS)}")
    if name == "ray":
        return RayExecutor(address, jobs)
    if name == "slurm":
        return SlurmExecutor(Path(out) / "slurm", slurm)
    if address is not None:
        raise PPGenError("--address is the Ray cluster's; it needs --executor ray")
    return None
