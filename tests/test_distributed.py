"""Data-parallel training on CPU with 2 gloo processes: the same global batch and seed give one process's
parameters (objectives deterministic given the batch) and identical replicas (every objective); a killed
rank ends ``ppgen train --nproc 2`` with one line and a directory that ``--resume`` continues.

The processes are spawned once for all objectives (one ~5 s start-up), not once per case.
"""

import copy
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
import ppgen.models  # noqa: F401  (imported before the fork, not in each rank)
from ppgen.inference.distributed import free_port, shard_bounds
from ppgen.seed import get_rng_state, seed_everything

WORLD = 2
START = "fork" if "fork" in mp.get_all_start_methods() else "spawn"  # fork: no second import of torch
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


def _resumed(case: str, split: int, total: int) -> tuple[dict, dict]:
    r"""The parameters after ``total`` epochs straight, and after ``split`` epochs, a checkpoint, a new
    model and objective loaded from it, and the rest."""
    name, kind, config, options, _ = CASES[case]
    options = {k: v for k, v in options.items() if k != "steps"}
    data = _data(kind)
    straight = _fit_epochs(name, data, config, options, total)
    saved = {}

    def keep(epoch, row, objective):
        if epoch == split:
            saved.update(model=copy.deepcopy(objective.model.state_dict()), rng=get_rng_state(),
                         objective=copy.deepcopy(objective.state_dict()))  # fmt: skip

    _fit_epochs(name, data, config, options, split, on_epoch_end=keep)
    seed_everything(0)
    model = ppgen.create(name, data, **config)
    model.load_state_dict(saved["model"])
    ppgen.fit(model, data, epochs=total, batch_size=BATCH, progress=False, start_epoch=split,
              objective_state=saved["objective"], rng_state=saved["rng"], **options)  # fmt: skip
    return straight, model.state_dict()


def _fit_epochs(name, data, config, options, epochs, **more) -> dict:
    seed_everything(0)
    model = ppgen.create(name, data, **config)
    ppgen.fit(model, data, epochs=epochs, batch_size=BATCH, progress=False, **options, **more)
    return model.state_dict()


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        for case in CASES:
            model = _fit(case)
            torch.save(model.state_dict(), Path(out) / f"{case}-{rank}.pt")
        torch.save(_resumed("contrastive", 1, 2), Path(out) / f"resume-{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def parallel_states(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp")
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first call imports torch._dynamo (~5 s)
    mp.start_processes(_worker, args=(free_port(), str(out)), nprocs=WORLD, start_method=START)
    states = {c: [torch.load(out / f"{c}-{r}.pt", weights_only=True) for r in range(WORLD)] for c in CASES}
    states["resume"] = [torch.load(out / f"resume-{r}.pt", weights_only=True) for r in range(WORLD)]
    return states


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


def test_resumed_parallel_fit_continues_exactly(parallel_states):
    r"""contrastive (noise streams and per-rank replay buffers in the checkpoint): 1 + 1 epochs = 2."""
    for straight, resumed in parallel_states["resume"]:
        assert not _close(straight, resumed, rtol=0, atol=0)


def test_nproc_is_checked_in_one_line(tmp_path, capsys, monkeypatch):
    from ppgen.app.cli import main

    argv = ["train", "independent", "--data", "rings8", "--out", str(tmp_path / "r")]
    assert main([*argv, "--nproc", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("--nproc must be at least 1, got 0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*argv, "--nproc", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "under torchrun leave it out" in err
    assert not (tmp_path / "r").exists()


def test_ctrl_c_is_reported_once_by_the_launcher(capsys, monkeypatch):
    r"""Ctrl-C reaches the launcher and every rank it started; only the launcher prints the line."""
    import ppgen.app.cli as cli

    def interrupted(threads):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "set_threads", interrupted)
    assert cli.main(["list"]) == 130
    assert capsys.readouterr().err.strip() == "ppgen list: interrupted"
    monkeypatch.setenv("PPGEN_LAUNCHED", "1")  # a rank of --nproc
    assert cli.main(["list"]) == 130
    assert capsys.readouterr().err == ""


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
