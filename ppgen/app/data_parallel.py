"""``ppgen train --nproc N`` and ``torchrun ... -m ppgen train``: one run on several processes.

Every rank runs the same command. Rank 0 is the run: it checks the command line, holds the run
directory's lock, writes ``config.json``, the checkpoints, ``metrics.json`` and the samples, exactly as
one process does; before training it hands the other ranks what they need (:func:`share`: the model's
state, the fit options, the saved optimizer and random-generator state on ``--resume``), and they join
its fit (:func:`ppgen.inference.distributed`) and write nothing. Rank 0 alone evaluates the model.

``--nproc N`` is a small torchrun: it starts N ``python -m ppgen`` processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and a free ``MASTER_PORT`` and waits for them. When one
of them dies (killed, out of memory), it stops the others and says so in one line; the checkpoint of
the last finished epoch stays, so the same command with ``--resume`` continues the run.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ppgen.app.commands.options import load_split
from ppgen.app.job import resolve_device
from ppgen.app.specs import build_model
from ppgen.errors import NonFiniteLossError, PPGenError
from ppgen.inference import fit
from ppgen.inference.distributed import env_world, free_port, init_from_env
from ppgen.seed import seed_everything

__all__ = ["add_arguments", "run", "share", "launch"]

LAUNCHED = "PPGEN_LAUNCHED"  # set by --nproc in its children: they are ranks, not launchers (see also cli)
ERRORS = "PPGEN_RANK_ERRORS"  # the folder where a child leaves its one-line error for the launcher
GRACE_SECONDS = 10.0  # after one rank fails, how long the others get to stop by themselves
FAILED = 3  # a rank's exit code for an error the launcher reports


def add_arguments(p) -> None:
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel training on this many processes (gloo on CPU, nccl on CUDA: one GPU each); "
        "under torchrun leave it out",
    )


def run(args, single) -> int:
    r"""Runs ``single(args)`` (the one-process command) as this process's part of the run."""
    rank, world, _ = env_world()
    if args.nproc < 1:
        raise PPGenError(f"--nproc must be at least 1, got {args.nproc}")
    if os.environ.get(LAUNCHED) != "1" and args.nproc > 1:
        if world > 1:
            raise PPGenError("--nproc starts its own processes; under torchrun leave it out")
        return launch(args)
    if world == 1:
        return single(args)
    init_from_env(resolve_device(args.device))
    try:
        return single(args) if rank == 0 else _follow(args)
    except (PPGenError, NonFiniteLossError, KeyboardInterrupt):
        raise
    except Exception as e:  # a lost peer, or a failure of this rank's own
        line = f"rank {rank} of {world} failed: {type(e).__name__}: {_first_line(e)}"
        if os.environ.get(LAUNCHED) == "1":
            _report(rank, line)
            return FAILED
        if rank == 0:
            resume = f"{args.out} keeps its last checkpoint: continue with --resume"
            raise PPGenError(f"{line}; {resume}") from None
        return FAILED
    finally:
        if rank == 0 and not _shared["done"]:
            share(None)  # rank 0 stopped before training (and says why): the others wait for it
        dist.destroy_process_group()


_shared = {"done": False}


def share(package: dict | None) -> None:
    r"""Rank 0: hands ``package`` (or None: stop) to the other ranks; nothing in one process."""
    if not (dist.is_available() and dist.is_initialized()) or _shared["done"]:
        return
    dist.broadcast_object_list([package], src=0)
    _shared["done"] = True


def _follow(args) -> int:
    r"""A rank other than 0: joins rank 0's fit with what :func:`share` sent, writes nothing."""
    box = [None]
    dist.broadcast_object_list(box, src=0)
    package = box[0]
    if package is None:  # rank 0 stopped before training; it says why
        return 2
    for key in ("data", "data_root", "kind"):
        setattr(args, key, package[key])
    train = load_split(args, "train")
    model = build_model(package["spec"], train, package["config"])
    model.load_state_dict(package["state_dict"])
    seed_everything(package["seed"])
    model = model.to(resolve_device(args.device))
    try:
        fit(model, train, progress=False, **package["fit_options"])
    except NonFiniteLossError:
        return 1  # every rank stops at the same step; rank 0 says so
    return 0


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else "(no message)"


def _report(rank: int, line: str) -> None:
    folder = os.environ.get(ERRORS)
    if folder:
        Path(folder, f"rank{rank}").write_text(line)


def launch(args) -> int:
    r"""Starts ``args.nproc`` ranks of the same command on this machine, waits, and reports a failure."""
    n = args.nproc
    device = resolve_device(args.device)
    if device.type == "cuda" and n > torch.cuda.device_count():
        raise PPGenError(f"--nproc {n} on CUDA needs {n} GPUs; this machine has {torch.cuda.device_count()}")
    errors = tempfile.mkdtemp(prefix="ppgen-ranks-")
    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
            "WORLD_SIZE": str(n), LAUNCHED: "1", ERRORS: errors}  # fmt: skip
    argv = [sys.executable, "-m", "ppgen", *args.argv]
    procs = [subprocess.Popen(argv, env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(n)]
    stopped: set[int] = set()
    try:
        _wait(procs, stopped)
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    codes = [p.returncode for p in procs]
    killed = [r for r, c in enumerate(codes) if c < 0 and r not in stopped]
    resume = f"{args.out} keeps the checkpoint of its last finished epoch: continue with --resume"
    if killed:
        r = killed[0]
        name = signal.Signals(-codes[r]).name
        print(f"ppgen train: rank {r} of {n} was killed by {name}; {resume}", file=sys.stderr)
        return 1
    reports = sorted(Path(errors).glob("rank*"))
    if reports:
        print(f"ppgen train: {reports[0].read_text().strip()}; {resume}", file=sys.stderr)
        return 1
    rest = [c for r, c in enumerate(codes) if r not in stopped]
    return max(rest, default=1)


def _wait(procs: list, stopped: set) -> None:
    r"""Waits for every rank; once one fails, gives the others a grace period, then terminates them."""
    failed_at = None
    while any(p.poll() is None for p in procs):
        if failed_at is None and any(p.returncode not in (None, 0) for p in procs):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
            for r, p in enumerate(procs):
                if p.poll() is None:
                    stopped.add(r)
                    p.terminate()
            for p in procs:
                p.wait()
        time.sleep(0.05)
