"""Run directories under faults: concurrent writers, processes killed while writing, a full disk, damaged
files, numerical breakdowns, and resuming (4 epochs straight and 2 + 2 give bit-identical runs)."""

import copy
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ppgen
from ppgen.app import runs
from ppgen.app.cli import main
from ppgen.data import from_tensor, load
from ppgen.errors import NonFiniteLossError, PPGenError
from ppgen.inference import OBJECTIVES, Objective, register_objective


def ppgen_cli(*args):
    return main([str(a) for a in args])


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for fragment in fragments:
        assert fragment in err[0], err[0]
    return err[0]


def snapshot(run: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    r"""Small data files (400 rings8 points, 400 binarized digits), so that every train takes a second."""
    root = tmp_path_factory.mktemp("data")
    np.save(root / "rings.npy", load("rings8", "train").x[:400].numpy())
    np.save(root / "digits.npy", load("digits", "train").x[:400].reshape(400, -1).numpy())
    return root


def train_args(files, out, *more, model="mixture", data="rings.npy", config=("components=4",)):
    args = ["train", model, "--data", files / data, "--out", out, "--quiet", "--batch-size", 64]
    return args + ["--num-samples", 10, *(["--config", *config] if config else []), *more]


@pytest.fixture(scope="module")
def finished(files, tmp_path_factory):
    r"""A finished 2-epoch mixture run, to be copied and damaged."""
    run = tmp_path_factory.mktemp("runs") / "done"
    assert ppgen_cli(*train_args(files, run, "--epochs", 2)) == 0
    return run


# --- concurrent writers ---------------------------------------------------------------------------
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_writer_is_refused_with_the_holders_pid(files, tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, run / runs.LOCK], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert ppgen_cli(*train_args(files, run, "--epochs", 1)) == 2
        one_error_line(capsys, "in use by process", str(holder.pid))
        assert [p.name for p in run.iterdir()] == [runs.LOCK]  # nothing written beside the holder's lock
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock file (with a dead pid) is taken over
    assert (run / runs.LOCK).read_text().strip() == str(holder.pid)
    assert ppgen_cli(*train_args(files, run, "--epochs", 1)) == 0
    assert not (run / runs.LOCK).exists()  # released at the end
    runs.load_run(run)


def test_lock_is_held_for_the_whole_resume(finished, files, tmp_path, capsys):
    run = tmp_path / "r"
    shutil.copytree(finished, run)
    before = snapshot(run)
    with runs.RunLock(run):
        assert ppgen_cli(*train_args(files, run, "--epochs", 3, "--resume")) == 2
        one_error_line(capsys, "in use by process", str(os.getpid()))
        assert ppgen_cli(*train_args(files, run, "--epochs", 3, "--force")) == 2
        one_error_line(capsys, "in use by process")
    assert snapshot(run) == before


# --- processes killed while writing ----------------------------------------------------------------
def _kill_at_random(files, run: Path, delay: float, seed: int) -> None:
    r"""Starts a long `ppgen train` into ``run``; SIGKILLs it ``delay`` seconds after its first checkpoint."""
    cmd = [
        sys.executable,
        "-m",
        "ppgen",
        *map(str, train_args(files, run, "--epochs", 10_000, "--seed", seed)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while not (run / runs.CHECKPOINT).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _loads_or_is_refused_cleanly(run: Path) -> None:
    try:
        model, _ = runs.load_run(run)
    except PPGenError as e:  # refused, in one line
        assert "\n" not in str(e)
    else:
        assert all(torch.isfinite(p).all() for p in model.parameters())


def test_sigkill_while_writing_checkpoints_leaves_a_loadable_run(files, tmp_path, capsys):
    run = tmp_path / "r"
    _kill_at_random(files, run, delay=0.3, seed=0)
    _loads_or_is_refused_cleanly(run)
    model, _ = runs.load_run(run)  # a checkpoint existed before the kill, and the writes are atomic
    # the killed writer's lock is taken over, its leftovers cleared, and the run continues
    epochs = torch.load(run / runs.CHECKPOINT, weights_only=True)["trainer"]["epoch"]
    (run / ".model.pt.killed.tmp").write_bytes(b"half a checkpoint")  # as a kill inside atomic_write leaves
    assert ppgen_cli(*train_args(files, run, "--epochs", epochs + 1, "--resume")) == 0
    assert json.loads((run / runs.METRICS).read_text())["epochs"] == epochs + 1
    assert not list(run.glob(".*.tmp")) and not (run / runs.LOCK).exists()


@pytest.mark.slow
def test_sigkill_storm(files, tmp_path):
    rng = random.Random(0)
    for i in range(6):
        run = tmp_path / f"r{i}"
        _kill_at_random(files, run, delay=rng.uniform(0, 1.5), seed=i)
        _loads_or_is_refused_cleanly(run)


def test_crash_between_write_and_rename_keeps_the_old_file(finished, tmp_path, monkeypatch):
    run = tmp_path / "r"
    shutil.copytree(finished, run)
    before = snapshot(run)

    def crash(*args):
        raise KeyboardInterrupt  # the process dies after writing the temporary file, before the rename

    monkeypatch.setattr(runs.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        runs.write_json(run / runs.METRICS, {"model": "half-written"})
    assert snapshot(run) == before  # no temporary file left, the old file intact
    monkeypatch.undo()
    runs.load_run(run)


# --- a full disk ------------------------------------------------------------------------------------
class FullDisk:
    r"""os.fdopen whose files raise ENOSPC on write once ``budget`` writes have been made."""

    def __init__(self, budget: int):
        self.budget = budget
        self.real = os.fdopen

    def __call__(self, fd, *args, **kwargs):
        f = self.real(fd, *args, **kwargs)
        disk = self

        class File:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, data):
                disk.budget -= 1
                if disk.budget < 0:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return f.write(data)

            def __getattr__(self, name):
                return getattr(f, name)

        return File()


def test_disk_full_stops_with_one_line_and_keeps_the_last_checkpoint(files, tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    # 1 write for config.json, then 2 per epoch (model.pt, train_log.csv): the disk fills in epoch 3
    monkeypatch.setattr(runs.os, "fdopen", FullDisk(budget=5))
    assert ppgen_cli(*train_args(files, run, "--epochs", 5)) == 2
    one_error_line(capsys, "disk full", "model.pt")
    monkeypatch.undo()
    assert not list(run.glob(".*.tmp")) and not (run / runs.LOCK).exists()
    payload = torch.load(run / runs.CHECKPOINT, weights_only=True)
    assert payload["trainer"]["epoch"] == 2
    runs.load_run(run)
    assert ppgen_cli(*train_args(files, run, "--epochs", 3, "--resume")) == 0  # space freed: it continues


def test_disk_full_before_the_first_checkpoint_leaves_nothing(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runs.os, "fdopen", FullDisk(budget=0))
    assert ppgen_cli(*train_args(files, tmp_path / "r", "--epochs", 2)) == 2
    one_error_line(capsys, "disk full", "config.json")
    assert not (tmp_path / "r").exists()


# --- damaged files -----------------------------------------------------------------------------------
def _truncate(run):
    data = (run / "model.pt").read_bytes()
    (run / "model.pt").write_bytes(data[: len(data) // 2])


def _payload(change):
    def damage(run):
        payload = torch.load(run / "model.pt", weights_only=True)
        change(payload)
        torch.save(payload, run / "model.pt")

    return damage


def _nan_weights(payload):
    payload["state_dict"] = {k: torch.full_like(v, float("nan")) for k, v in payload["state_dict"].items()}


def _pickled(run):
    class Payload:
        def __reduce__(self):
            return (print, ("not loaded",))

    torch.save(Payload(), run / "model.pt")


def _other_model(run):
    other = from_tensor(load("rings8", "train").x[:50], "continuous")
    runs.save_checkpoint(run / "model.pt", ppgen.create("independent", other))


def _write(name, text):
    return lambda run: (run / name).write_text(text)


DAMAGE = {
    "truncated model.pt": (_truncate, "corrupt"),
    "garbage model.pt": (lambda run: (run / "model.pt").write_bytes(os.urandom(500)), "corrupt"),
    "pickled model.pt": (_pickled, "corrupt"),
    "model.pt without keys": (lambda run: torch.save({"format_version": 2}, run / "model.pt"), "lacks"),
    "model.pt holding a list": (lambda run: torch.save([1, 2], run / "model.pt"), "holds a list"),
    "model.pt with NaN weights": (_payload(_nan_weights), "NaN"),
    "model.pt with an altered config": (_payload(lambda p: p["config"].update(components=5)), "hash"),
    "model.pt of another model": (_other_model, "inconsistent"),
    "model.pt missing": (lambda run: (run / "model.pt").unlink(), "model.pt"),
    "config.json a list": (_write("config.json", "[1, 2]"), "holds a list"),
    "config.json empty object": (_write("config.json", "{}"), "lacks model, data, config"),
    "config.json garbage": (_write("config.json", "{garbage"), "not valid JSON"),
    "config.json of another config": (
        _write(
            "config.json",
            json.dumps({"model": "mixture", "data": "x", "config": {"components": 9}, "config_hash": "0"}),
        ),
        "inconsistent",
    ),  # fmt: skip
    "metrics.json of another model": (_write("metrics.json", json.dumps({"model": "vae"})), "inconsistent"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_run_is_refused_in_one_line_by_every_reader(case, finished, files, tmp_path, capsys):
    damage, fragment = DAMAGE[case]
    run = tmp_path / "r"
    shutil.copytree(finished, run)
    damage(run)
    before = snapshot(run)
    assert ppgen_cli("eval", run, "--num-samples", 10) == 2
    one_error_line(capsys, fragment)
    assert ppgen_cli("sample", run, "-n", 4, "--out", tmp_path / "s.pt") == 2
    one_error_line(capsys, fragment)
    assert not (tmp_path / "s.pt").exists()
    assert ppgen_cli(*train_args(files, run, "--epochs", 4, "--resume")) == 2
    one_error_line(capsys)
    assert snapshot(run) == before  # a refused resume changes nothing


def test_force_clears_the_old_outputs_before_writing(finished, files, tmp_path, monkeypatch):
    run = tmp_path / "r"
    shutil.copytree(finished, run)
    (run / "inspect").mkdir()
    (run / ".model.pt.123.tmp").write_bytes(b"left by a killed writer")
    seen = {}

    def spy(path, data, real=runs.atomic_write):
        seen.setdefault("first", sorted(p.name for p in Path(path).parent.iterdir()))
        real(path, data)

    monkeypatch.setattr(runs, "atomic_write", spy)
    assert ppgen_cli(*train_args(files, run, "--epochs", 1, "--force", model="independent", config=())) == 0
    assert seen["first"] == [runs.LOCK]  # everything old was gone before the first new file
    assert json.loads((run / "metrics.json").read_text())["model"] == "independent"
    runs.load_run(run)


# --- resuming --------------------------------------------------------------------------------------
RESUME_CASES = {  # one model of each objective, sized to train in about a second
    "elbo": ("mixture", "rings.npy", ["components=4"]),
    "counting": ("independent", "digits.npy", []),
    "adversarial": ("gan", "rings.npy", []),
    "denoising": ("ddpm", "rings.npy", ["timesteps=10"]),
    "dsm": ("smld", "rings.npy", ["num_sigmas=4", "steps_per_sigma=2"]),
    "contrastive": ("ebm", "rings.npy", ["train_steps=2", "sample_steps=5", "quadrature_points=64"]),
    "annealed-elbo": ("realnvp", "rings.npy", ["num_layers=2"]),
    "reconstruction": ("autoencoder", "digits.npy", ["latent_dim=2"]),
}


def test_every_objective_is_covered():
    assert set(RESUME_CASES) >= set(OBJECTIVES) - {"test-explodes"}


@pytest.mark.parametrize("objective", list(RESUME_CASES))
def test_resume_is_bit_identical(objective, files, tmp_path):
    name, data, config = RESUME_CASES[objective]
    assert ppgen.get(name).objective == objective
    straight, split = tmp_path / "straight", tmp_path / "split"
    args = dict(model=name, data=data, config=config)
    assert ppgen_cli(*train_args(files, straight, "--epochs", 4, **args)) == 0
    assert ppgen_cli(*train_args(files, split, "--epochs", 2, **args)) == 0
    assert ppgen_cli(*train_args(files, split, "--epochs", 4, "--resume", **args)) == 0
    a, b = (torch.load(r / "model.pt", weights_only=True) for r in (straight, split))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (straight, split))
    assert ma.pop("timings").keys() == mb.pop("timings").keys()
    assert ma == mb and ma["epochs"] == 4 and ma["steps"] == 4 * 5  # 320 training examples, batches of 64
    log = (split / "train_log.csv").read_text().strip().splitlines()
    assert len(log) == 1 + 4


def test_resume_counts_steps_and_seconds_cumulatively(finished, files, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(finished, run)
    first = json.loads((run / "metrics.json").read_text())
    assert ppgen_cli(*train_args(files, run, "--epochs", 3, "--resume")) == 0
    then = json.loads((run / "metrics.json").read_text())
    assert (first["epochs"], then["epochs"]) == (2, 3) and then["steps"] == 3 * 5
    assert then["timings"]["train_seconds"] > first["timings"]["train_seconds"]


@pytest.mark.parametrize(
    "more, fragment",
    [
        (("--epochs", 2), "already has 2 epochs"),
        (("--epochs", 1), "would train nothing"),
        (("--steps", 10), "already has 10 steps"),
        (("--epochs", 3, "--seed", 5), "trained with --seed 0"),
        (("--epochs", 3, "--config", "components=5"), "--config cannot change it"),
    ],
)
def test_resume_refuses_what_it_cannot_do_and_changes_nothing(
    more, fragment, finished, files, tmp_path, capsys
):
    run = tmp_path / "r"
    shutil.copytree(finished, run)
    before = snapshot(run)
    args = train_args(files, run, "--resume", config=())
    assert ppgen_cli(*args, *more) == 2
    one_error_line(capsys, fragment)
    assert snapshot(run) == before


def test_resume_applies_a_new_batch_size(finished, files, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(finished, run)
    assert ppgen_cli(*train_args(files, run, "--epochs", 3, "--resume", "--batch-size", 320, config=())) == 0
    assert json.loads((run / "config.json").read_text())["fit"]["batch_size"] == 320
    assert json.loads((run / "metrics.json").read_text())["steps"] == 2 * 5 + 1


def test_resume_applies_a_new_learning_rate_to_the_saved_optimizer(finished, files, tmp_path, capsys):
    run = tmp_path / "r"
    shutil.copytree(finished, run)
    saved = torch.load(run / "model.pt", weights_only=True)["trainer"]
    old = saved["objective"]["adam"]["param_groups"][0]["lr"]
    assert ppgen_cli(*train_args(files, run, "--epochs", 3, "--resume", "--lr", 0.5 * saved["lr"])) == 0
    assert "applied to the saved optimizer state" in capsys.readouterr().err
    trainer = torch.load(run / "model.pt", weights_only=True)["trainer"]
    assert trainer["lr"] == 0.5 * saved["lr"]
    assert trainer["objective"]["adam"]["param_groups"][0]["lr"] == pytest.approx(0.5 * old)
    assert json.loads((run / "config.json").read_text())["fit"]["lr"] == 0.5 * saved["lr"]


def test_same_seed_gives_identical_metrics_apart_from_timings(files, tmp_path):
    records = []
    for name in ("a", "b"):
        assert ppgen_cli(*train_args(files, tmp_path / name, "--epochs", 2, "--seed", 7)) == 0
        records.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert set(records[0]["timings"]) >= {"train_seconds", "sample_seconds_per_1000"}
    assert [{k: v for k, v in r.items() if k != "timings"} for r in records] == [
        {k: v for k, v in records[1].items() if k != "timings"}
    ] * 2


# --- numerical breakdowns -------------------------------------------------------------------------------
@pytest.fixture
def faulty_objective():
    r"""An objective that takes real SGD steps, then at step ``fault_at`` does what ``fault`` says."""

    @register_objective("test-faulty")
    class Faulty(Objective):
        watch_divergence = True
        fault, fault_at = None, 5

        def __init__(self, model, lr, **options):
            super().__init__(model, lr)
            self.count = 0
            self.optimizers["sgd"] = torch.optim.SGD(model.parameters(), lr=0.05)

        def step(self, x, y):
            self.count += 1
            loss = -self.model.log_prob(x).mean()
            self.optimizers["sgd"].zero_grad()
            loss.backward()
            logs = {"loss": loss.item(), "grad_norm": 1.0}
            if self.count >= self.fault_at:
                if self.fault == "nan parameter":
                    with torch.no_grad():
                        self.model.params.fill_(float("nan"))
                    return {"loss": -self.model.log_prob(x).mean().item()}  # Pyro's validation raises here
                if self.fault == "inf gradient":
                    logs["grad_norm"] = float("inf")
                if self.fault == "divergence":
                    logs["loss"] = 1e7
            self.optimizers["sgd"].step()
            return logs

    yield Faulty
    del OBJECTIVES["test-faulty"]


@pytest.mark.parametrize(
    "fault, fragment",
    [
        ("nan parameter", "non-finite parameter params"),
        ("inf gradient", "non-finite grad norm"),
        ("divergence", "diverging loss"),
    ],
)
def test_breakdowns_stop_training_and_restore_the_last_good_epoch(fault, fragment, faulty_objective):
    data = from_tensor(load("rings8", "train").x[:256], "continuous")
    model = ppgen.create("mixture", data, components=3)
    faulty_objective.fault = fault
    seen = []
    with pytest.raises(NonFiniteLossError, match=f"{fragment}.*restored the model of epoch 2"):
        ppgen.fit(model, data, objective="test-faulty", epochs=10, batch_size=128, progress=False,
                  on_epoch_end=lambda *_: seen.append(copy.deepcopy(model.state_dict())))  # fmt: skip
    assert len(seen) == 2
    assert all(torch.equal(v, seen[-1][k]) for k, v in model.state_dict().items())


def test_pyro_validation_error_from_nan_parameters_is_a_clean_stop(files, tmp_path, capsys):
    run = tmp_path / "r"
    assert ppgen_cli(*train_args(files, run, "--epochs", 3, "--lr", 1e6)) == 1
    line = one_error_line(capsys, "training stopped", "non-finite", "last good checkpoint")
    assert "Traceback" not in line
    model, _ = runs.load_run(run)  # the initial model, finite
    assert json.loads((run / "metrics.json").read_text())["stopped"]


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path):
    old = os.umask(0o022)
    try:
        runs.atomic_write(tmp_path / "report.html", b"<html></html>")
        (tmp_path / "plain.html").write_bytes(b"<html></html>")
    finally:
        os.umask(old)
    mode = lambda name: (tmp_path / name).stat().st_mode & 0o777
    assert mode("report.html") == mode("plain.html") == 0o644
