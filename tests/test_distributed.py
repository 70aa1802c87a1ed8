"""Data-parallel training on CPU with 2 gloo processes: the same global batch and seed give one process's
parameters (objectives deterministic given the batch) and identical replicas (every objective); a killed
rank ends ``ppgen train --nproc 2`` with one line and a directory that ``--resume`` continues.

The processes are spawned once for all objectives (one ~5 s start-up), not once per case.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ppgen
from ppgen.inference.distributed import free_port, shard_bounds
from ppgen.seed import seed_everything

WORLD = 2
BATCH = 16  # global: 8 examples per rank

# name, data kind, model config, fit options; "exact": one process's parameters are reproduced
CASES = {
    "maximum-likelihood": (
        "made",
        "binary",
        {"hidden_sizes": (8,), "resample_order": False},
        {"steps": 4},
        True,
    ),
    "elbo-enumerated": ("mixture", "binary", {"components": 3}, {"steps": 4}, True),
    "counting": ("independent", "binary", {}, {"epochs": 2}, True),
    "annealed-elbo": (
        "realnvp",
        "continuous",
        {"num_layers": 2, "hidden_dims": (8,)},
        {"steps": 4, "data_noise": 0.0},
        True,
    ),
    "reconstruction": ("autoencoder", "continuous", {"hidden": (8,)}, {"steps": 4}, True),
    "elbo": ("vae", "binary", {"hidden": (8,), "latent_dim": 2}, {"steps": 4}, False),
    "adversarial": ("gan", "continuous", {"hidden": 8, "latent_dim": 2}, {"steps": 4}, False),
    "contrastive": ("ebm", "continuous", {"hidden": 8, "train_steps": 2}, {"steps": 4}, False),
    "denoising": ("ddpm", "continuous", {"hidden": 8, "timesteps": 10}, {"steps": 4}, False),
    "dsm": ("smld", "continuous", {"hidden": 8, "num_sigmas": 4}, {"steps": 4}, False),
}


def _data(kind: str):
    g = torch.Generator().manual_seed(1)
    if kind == "binary":
        x = (torch.rand(48, 6, generator=g) < 0.4).float()
    else:
        x = torch.randn(48, 2, generator=g) * torch.tensor([1.0, 0.5]) + 1.0
    return ppgen.data.from_tensor(x, kind=kind)


def _fit(case: str):
    name, kind, config, options, _ = CASES[case]
    data = _data(kind)
    seed_everything(0)
    model = ppgen.create(name, data, **config)
    ppgen.fit(model, data, batch_size=BATCH, progress=False, **options)
    return model


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        for case in CASES:
            model = _fit(case)
            torch.save(model.state_dict(), Path(out) / f"{case}-{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def parallel_states(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp")
    mp.start_processes(_worker, args=(free_port(), str(out)), nprocs=WORLD, start_method="spawn")
    return {
        case: [torch.load(out / f"{case}-{r}.pt", weights_only=True) for r in range(WORLD)] for case in CASES
    }


def _close(a: dict, b: dict, **tol) -> list[str]:
    return [k for k in a if a[k].is_floating_point() and not torch.allclose(a[k], b[k], **tol)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_match_one(case, parallel_states):
    ranks = parallel_states[case]
    assert not _close(ranks[0], ranks[1], rtol=0, atol=0), "the replicas drifted apart"
    one = _fit(case).state_dict()
    if CASES[case][4]:
        assert not _close(ranks[0], one, rtol=1e-5, atol=1e-6), "2 processes differ from 1"
    else:  # different noise streams: the parameters moved from the same start, to different places
        seed_everything(0)
        start = ppgen.create(CASES[case][0], _data(CASES[case][1]), **CASES[case][2]).state_dict()
        assert _close(ranks[0], start, rtol=0, atol=1e-7), "the parallel fit did not train"


def test_shards_cover_the_batch_once():
    for n in range(2, 9):
        for world in (2, 3):
            if n < world:
                continue
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1


def _worker_pids(parent: int) -> list[int]:
    kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(k) for k in kids if b"resource_tracker" not in Path(f"/proc/{k}/cmdline").read_bytes()]


@pytest.mark.slow  # six process start-ups (~1 min on 2 idle cores, 4.5 min under load)
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the ranks through /proc")
def test_killed_rank_ends_the_job_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "ppgen", "train", "nade", "--data", "digits", "--batch-size", "64",
           "--config", "hidden=8", "--device", "cpu", "--quiet", "--nproc", "2",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen([*cmd, "--epochs", "400"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "model.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (out / "model.pt").exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    workers = _worker_pids(proc.pid)
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 1
    assert len(lines) == 1 and "killed" in lines[0] and "--resume" in lines[0], err
    done = torch.load(out / "model.pt", weights_only=True)["trainer"]["epoch"]
    assert 1 <= done < 400
    resumed = subprocess.run(
        [*cmd, "--epochs", str(done + 1), "--resume"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(out / "model.pt", weights_only=True)["trainer"]["epoch"] == done + 1
    assert (out / "metrics.json").exists()
