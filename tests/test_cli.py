"""The `ppgen` command: run directories, reproducibility, and one clear line with exit 2 for bad input."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import ppgen as pp
from ppgen import data as ppdata
from ppgen.app.cli import main
from ppgen.errors import PPGenError

METRIC_KEYS = {
    "model",
    "data",
    "density",
    "n_params",
    "test_nll_nats",
    "test_nll_kind",
    "test_bpd",
    "device",
    "seed",
    "timings",
}
TIMING_KEYS = {"train_seconds", "sample_seconds_per_1000"}


def ppgen(*args):
    return main([str(a) for a in args])


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for fragment in fragments:
        assert fragment in err[0], err[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "ind"
    assert ppgen("train", "independent", "--data", "digits", "--out", run, "--quiet") == 0
    return run


def test_train_writes_the_run_directory(trained_run):
    for name in ("config.json", "model.pt", "metrics.json", "train_log.csv", "samples.png"):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics) and TIMING_KEYS <= set(metrics["timings"])
    assert not any("seconds" in k for k in metrics)  # every timing is under "timings"
    assert metrics["test_nll_kind"] == "exact" and metrics["test_nll_nats"] <= 25.3
    payload = torch.load(trained_run / "model.pt", weights_only=True)
    assert payload["format_version"] == 2 and payload["model"] == "independent"


def test_eval_and_sample(trained_run, tmp_path, capsys):
    assert ppgen("eval", trained_run) == 0
    assert "test_nll_nats" in capsys.readouterr().out
    assert ppgen("sample", trained_run, "-n", 10, "--out", tmp_path / "s.pt") == 0
    assert torch.load(tmp_path / "s.pt").shape == (10, 1, 8, 8)
    assert ppgen("sample", trained_run, "-n", 16, "--out", tmp_path / "s.png") == 0
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_same_seed_gives_identical_metrics(tmp_path):
    numbers = []
    for name in ("a", "b"):
        assert (
            ppgen(
                "train",
                "mixture",
                "--data",
                "rings8",
                "--epochs",
                2,
                "--seed",
                3,
                "--out",
                tmp_path / name,
                "--quiet",
                "--config",
                "components=4",
            )
            == 0
        )
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        numbers.append({k: v for k, v in m.items() if k != "timings"})
    assert numbers[0] == numbers[1]


def test_existing_run_dir_is_not_overwritten(trained_run, capsys):
    before = {p.name: p.read_bytes() for p in trained_run.iterdir()}
    assert ppgen("train", "independent", "--data", "digits", "--out", trained_run) == 2
    one_error_line(capsys, "already exists", "--force")
    assert before == {p.name: p.read_bytes() for p in trained_run.iterdir()}


def test_force_overwrites(tmp_path):
    run = tmp_path / "r"
    assert ppgen("train", "independent", "--data", "digits", "--out", run, "--quiet") == 0
    assert ppgen("train", "independent", "--data", "digits-gray", "--out", run, "--quiet", "--force") == 0
    assert json.loads((run / "metrics.json").read_text())["data"] == "digits-gray"


def test_resume_continues_a_run(tmp_path):
    run = tmp_path / "r"
    common = ("--data", "rings8", "--out", run, "--quiet", "--config", "components=4")
    assert ppgen("train", "mixture", *common, "--epochs", 2) == 0
    assert ppgen("train", "mixture", *common, "--epochs", 4, "--resume") == 0
    assert len((run / "train_log.csv").read_text().strip().splitlines()) == 1 + 4
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 4


@pytest.mark.parametrize(
    "args, fragments",
    [
        (
            ("train", "nade3", "--data", "digits", "--out", "{tmp}/x"),
            ("unknown model 'nade3'", "independent"),
        ),
        (
            ("train", "independent", "--data", "digitz", "--out", "{tmp}/x"),
            ("unknown data set 'digitz'", "rings8"),
        ),
        (
            ("train", "independent", "--data", "mnist", "--data-root", "{tmp}/none", "--out", "{tmp}/x"),
            ("put the four IDX files in",),
        ),
        (
            ("train", "independent", "--data", "digits", "--epochs", "0", "--out", "{tmp}/x"),
            ("--epochs must be a positive",),
        ),
        (
            ("train", "independent", "--data", "digits", "--device", "cuda", "--out", "{tmp}/x"),
            ("CUDA is not available",),
        ),
        (
            ("train", "mixture", "--data", "digits", "--config", "colours=3", "--out", "{tmp}/x"),
            ("bad config for mixture",),
        ),
        (("eval", "{tmp}/no-run"), ("not found",)),
        (("compare", "--data", "rings8", "--models", "nope", "--out", "{tmp}/x"), ("unknown model 'nope'",)),
    ],
)
def test_bad_input_exits_2_with_one_line(args, fragments, tmp_path, capsys, monkeypatch):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ppgen(*[a.format(tmp=tmp_path) for a in args]) == 2
    one_error_line(capsys, *fragments)
    assert not (tmp_path / "x").exists()


def test_nan_in_a_data_file_exits_2(tmp_path, capsys):
    x = np.zeros((20, 3), dtype=np.float32)
    x[4, 2] = np.nan
    np.save(tmp_path / "own.npy", x)
    assert ppgen("train", "independent", "--data", tmp_path / "own.npy", "--out", tmp_path / "x") == 2
    one_error_line(capsys, "NaN")
    assert not (tmp_path / "x").exists()


def test_own_data_file_trains(tmp_path):
    np.save(tmp_path / "own.npy", np.random.default_rng(0).integers(0, 2, (100, 4)))
    assert (
        ppgen(
            "train",
            "mixture",
            "--data",
            tmp_path / "own.npy",
            "--epochs",
            2,
            "--out",
            tmp_path / "r",
            "--quiet",
        )
        == 0
    )
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["test_nll_kind"] == "exact"


def test_corrupt_checkpoint_exits_2(trained_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    data = (broken / "model.pt").read_bytes()
    (broken / "model.pt").write_bytes(data[: len(data) // 2])
    assert ppgen("eval", broken) == 2
    one_error_line(capsys, "corrupt")


def test_sample_refuses_bad_or_existing_outputs(trained_run, tmp_path, capsys):
    assert ppgen("sample", trained_run, "--out", tmp_path / "s.jpg") == 2
    one_error_line(capsys, ".pt or .png")
    (tmp_path / "s.pt").write_bytes(b"keep")
    assert ppgen("sample", trained_run, "--out", tmp_path / "s.pt") == 2
    one_error_line(capsys, "already exists")
    assert (tmp_path / "s.pt").read_bytes() == b"keep"


def test_compare_writes_report_and_figures(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ("compare", "--data", "rings8", "--models", "independent,mixture", "--budget-seconds", "2")
    assert ppgen(*args, "--jobs", "1", "--out", out, "--quiet") == 0
    assert "mixture" in capsys.readouterr().out
    for name in ("report.md", "report.json", "report.html", "samples.png", "nll.png", "samples_mixture.png"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["independent", "mixture"]
    assert all("error" not in r and r["modes_total"] == 8 and not r["cached"] for r in rows)
    assert rows[1]["test_nll_nats"] < rows[0]["test_nll_nats"]
    assert "| mixture |" in (out / "report.md").read_text()
    # the same runs again, from the cache
    assert ppgen(*args, "--jobs", "1", "--out", out, "--quiet", "--force") == 0
    assert all(r["cached"] for r in json.loads((out / "report.json").read_text())["rows"])


def test_console_script_is_installed():
    exe = shutil.which("ppgen", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert exe is not None
    done = subprocess.run([exe, "list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "independent" in done.stdout


class _Pickled:
    def __reduce__(self):
        return (print, ("this must never run",))


def _data_file(name):
    r"""Writers of bad data files, by file name."""
    return {
        "strings.npy": lambda p: np.save(p, np.array([["a", "b"]] * 10)),
        "strings.pt": lambda p: torch.save({"x": [["a", "b"]] * 10}, p),
        "garbage.pt": lambda p: p.write_bytes(np.random.default_rng(0).bytes(300)),
        "pickled.pt": lambda p: torch.save(_Pickled(), p),
        "garbage.npz": lambda p: p.write_bytes(np.random.default_rng(0).bytes(300)),
        "labels.npz": lambda p: np.savez(p, x=np.zeros((20, 3)), y=np.array(["a"] * 20)),
        "complex.npy": lambda p: np.save(p, np.ones((20, 3)) * (1 + 2j)),
        "complex.pt": lambda p: torch.save(torch.ones(20, 3, dtype=torch.complex64), p),
    }[name]


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("strings.npy", "holds strings"),
        ("strings.pt", "not an array of numbers"),
        ("garbage.pt", "cannot read data file"),
        ("pickled.pt", "not loaded for safety"),
        ("garbage.npz", "cannot read data file"),
        ("labels.npz", "labels) holds strings"),
        ("complex.npy", "complex numbers"),
        ("complex.pt", "complex numbers"),
    ],
)
def test_bad_data_files_exit_2_with_one_line(name, fragment, tmp_path, capsys):
    _data_file(name)(tmp_path / name)
    assert ppgen("train", "independent", "--data", tmp_path / name, "--out", tmp_path / "x") == 2
    one_error_line(capsys, fragment)
    assert not (tmp_path / "x").exists()
    assert "this must never run" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("--out", "{tmp}/file/run"), ("is a file, not a folder",)),
        (("--out", "/proc/ppgen-run"), ("cannot create run directory",)),
        (("--config", "components=0", "--out", "{tmp}/x"), ("components must be a positive integer",)),
        (("--config", "components=-2", "--out", "{tmp}/x"), ("components",)),
        (("--seed", "-1", "--out", "{tmp}/x"), ("--seed", "2**63 - 1")),
        (("--seed", str(2**70), "--out", "{tmp}/x"), ("--seed",)),
        (("--lr", "nan", "--out", "{tmp}/x"), ("--lr must be a positive finite number",)),
        (("--epochs", "two", "--out", "{tmp}/x"), ("--epochs",)),
    ],
)
def test_bad_train_options_exit_2_leaving_nothing(args, fragments, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    args = [a.format(tmp=tmp_path) for a in args]
    assert ppgen("train", "mixture", "--data", "rings8", "--quiet", *args) == 2
    one_error_line(capsys, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_unwritable_out_exits_2(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root may write into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert ppgen("train", "independent", "--data", "digits", "--out", locked / "run") == 2
    one_error_line(capsys, "cannot write into")


def test_sample_into_a_missing_folder_exits_2(trained_run, tmp_path, capsys):
    assert ppgen("sample", trained_run, "--out", tmp_path / "nosuchdir" / "s.pt") == 2
    one_error_line(capsys, "does not exist")
    assert ppgen("sample", trained_run, "-n", 0, "--out", tmp_path / "s.pt") == 2
    one_error_line(capsys, "-n must be a positive integer")


def test_corrupt_classifier_cache_exits_2(trained_run, tmp_path, capsys, monkeypatch):
    from ppgen import features

    monkeypatch.setenv("PPGEN_CACHE", str(tmp_path))
    monkeypatch.setattr(features, "_MEMORY", {})
    (tmp_path / f"classifier-digits-v{features.FORMAT_VERSION}.pt").write_bytes(b"garbage")
    assert ppgen("eval", trained_run, "--num-samples", 10) == 2
    one_error_line(capsys, "cached classifier", "corrupt", "delete it")


def test_compare_with_no_model_name_exits_2(tmp_path, capsys):
    assert ppgen("compare", "--data", "rings8", "--models", ",", "--out", tmp_path / "x") == 2
    one_error_line(capsys, "names no model")
    assert not (tmp_path / "x").exists()


# --- the Python API: one PPGenError naming what was expected ----------------------------------------
@pytest.fixture(scope="module")
def rings():
    return ppdata.load("rings8", "train").subset(200)


def _api_cases():
    def model(data):
        return pp.create("mixture", data, components=3)

    return {
        "create components=-2": (lambda d: pp.create("mixture", d, components=-2), "components"),
        "create components=0": (lambda d: pp.create("mixture", d, components=0), "positive integer"),
        "create with a data name": (
            lambda d: pp.create("mixture", "digits"),
            "expected a Dataset or DataSpec",
        ),
        "create with a bad option": (lambda d: pp.create("mixture", d, colours=3), "bad config for mixture"),
        "log_prob of strings": (lambda d: model(d).log_prob("x"), "expected x of shape"),
        "log_prob of an empty batch": (lambda d: model(d).log_prob(torch.zeros(0, 2)), "empty batch"),
        "log_prob on another device": (
            lambda d: model(d).log_prob(torch.zeros(3, 2, device="meta")),
            "is on meta",
        ),
        "sample(-1)": (lambda d: model(d).sample(-1), "positive integer"),
        "sample(0)": (lambda d: model(d).sample(0), "positive integer"),
        "sample(2.5)": (lambda d: model(d).sample(2.5), "positive integer"),
        "vae.sample(0)": (
            lambda d: pp.create("vae", ppdata.load("digits", "test")).sample(0),
            "positive integer",
        ),
        "evaluate on empty data": (lambda d: pp.evaluate(model(d), d.subset(0)), "no examples"),
        "fit on empty data": (lambda d: pp.fit(model(d), d.subset(0), progress=False), "no examples"),
        "fit(lr=-1)": (lambda d: pp.fit(model(d), d, lr=-1, progress=False), "lr must be a positive"),
        "fit(epochs=0)": (
            lambda d: pp.fit(model(d), d, epochs=0, progress=False),
            "epochs must be a positive",
        ),
        "fit(batch_size=0)": (lambda d: pp.fit(model(d), d, batch_size=0, progress=False), "batch_size"),
        "fit(batch_size=-5)": (lambda d: pp.fit(model(d), d, batch_size=-5, progress=False), "batch_size"),
        "fit(steps=1.5)": (lambda d: pp.fit(model(d), d, steps=1.5, progress=False), "steps"),
        "from_tensor(kind=None)": (lambda d: ppdata.from_tensor(d.x, None), "kind must be"),
        "from_tensor of complex": (lambda d: ppdata.from_tensor(d.x * 1j, "continuous"), "complex"),
        "from_tensor of strings": (
            lambda d: ppdata.from_tensor(np.array([["a"]]), "binary"),
            "strings",
        ),
        "seed_everything(-1)": (lambda d: pp.seed_everything(-1), "seed must be an integer"),
    }


@pytest.mark.parametrize("case", list(_api_cases()))
def test_api_bad_input_raises_one_line_ppgen_error(case, rings):
    call, fragment = _api_cases()[case]
    with pytest.raises(PPGenError) as err:
        call(rings)
    message = str(err.value)
    assert fragment in message and "\n" not in message, message
