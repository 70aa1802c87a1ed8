"""`ppgen compare`: quick presets and budgets, the run cache, diagnostic flags, the report, parallel runs."""

import json
import re

import pytest
import torch

import ppgen
from ppgen.app.cache import cache_key, load_entry
from ppgen.app.compare import QUICK_MAX_SECONDS, compare, plan
from ppgen.app.diagnostics import add_flags, off_support_fraction, row_flags
from ppgen.app.grid import Cell, run_cell, run_grid
from ppgen.app.report import render_html, summarize
from ppgen.inference.posterior import active_units
from ppgen.metrics import mode_coverage

TINY = {"num_samples": 10, "n_mode_samples": 500, "n_image_samples": 0, "n_sweep": 200}


@pytest.fixture(scope="module")
def rings():
    return ppgen.data.load("rings8", "train", n=600), ppgen.data.load("rings8", "test", n=300)


@pytest.fixture
def presets(monkeypatch):
    r"""Tiny quick presets for two models on rings8, as a model class would declare them."""
    monkeypatch.setattr(ppgen.get("independent"), "quick_presets", {"*": {"fit": {"epochs": 1}}})
    monkeypatch.setattr(
        ppgen.get("mixture"),
        "quick_presets",
        {"rings8": {"config": {"components": 8}, "fit": {"epochs": 3, "budget_seconds": 30}}},
    )
    monkeypatch.setattr(ppgen.get("gan"), "quick_presets", {})


def test_plan_takes_quick_presets_and_leaves_out_models_without_one(rings, presets):
    train, _ = rings
    cells, left_out = plan(["independent", "mixture", "gan"], train, quick=True, seeds=(0, 1))
    assert left_out == {"gan": "no quick preset"}
    assert [(c.model, c.seed) for c in cells] == [
        ("independent", 0),
        ("independent", 1),
        ("mixture", 0),
        ("mixture", 1),
    ]
    mix = cells[2]
    assert mix.config == {"components": 8} and mix.fit == {"epochs": 3} and mix.budget_seconds == 30
    assert mix.target_epochs == 3 and mix.preset == "quick"
    assert cells[0].budget_seconds == QUICK_MAX_SECONDS  # the preset sets none
    cells, _ = plan(["mixture"], train, quick=True, budget_seconds=5)
    assert cells[0].budget_seconds == 5  # --budget-seconds wins over the preset
    cells, left_out = plan(["mixture", "gan"], train, quick=False)
    assert not left_out and cells[0].config == {} and cells[0].fit == {}
    assert cells[0].target_epochs == ppgen.get("mixture").fit_defaults["epochs"]
    assert cells[0].budget_seconds is None and cells[0].preset == "default"


def test_cache_key_changes_with_what_determines_the_run(rings):
    train, test = rings
    cell = Cell("mixture", {"components": 8}, {"epochs": 3}, None, 0, **TINY)
    key = cell.key(train, test)
    assert key == Cell("mixture", {"components": 8}, {"epochs": 3}, None, 0, **TINY).key(train, test)
    changed = [
        Cell("mixture", {"components": 9}, {"epochs": 3}, None, 0, **TINY),
        Cell("mixture", {"components": 8}, {"epochs": 4}, None, 0, **TINY),
        Cell("mixture", {"components": 8}, {"epochs": 3}, 10.0, 0, **TINY),
        Cell("mixture", {"components": 8}, {"epochs": 3}, None, 1, **TINY),
    ]
    assert len({key} | {c.key(train, test) for c in changed}) == 5
    assert cell.key(train.subset(599), test) != key  # other data, other fingerprint
    assert cache_key(a=1) != cache_key(a=2)


def test_cache_reuses_a_run_and_retrains_a_corrupt_entry(rings, tmp_path):
    train, test = rings
    cell = Cell("mixture", {"components": 8}, {"epochs": 2}, None, 0, **TINY)
    first, _ = run_cell(cell, train, test, cache_root=tmp_path)
    again, samples = run_cell(cell, train, test, cache_root=tmp_path)
    assert not first["cached"] and again["cached"] and samples.shape == (1000, 2)
    assert again["test_nll_nats"] == first["test_nll_nats"] and again["epochs"] == 2
    entry = tmp_path / first["cache_key"]
    blob = bytearray((entry / "model.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte
    (entry / "model.pt").write_bytes(bytes(blob))
    assert load_entry(first["cache_key"], tmp_path) is None and not entry.exists()  # never trusted
    (tmp_path / "partial").mkdir()  # a half-written entry: no manifest
    assert load_entry("partial", tmp_path) is None
    redone, _ = run_cell(cell, train, test, cache_root=tmp_path)
    assert not redone["cached"] and redone["test_nll_nats"] == first["test_nll_nats"]
    assert load_entry(first["cache_key"], tmp_path) is not None


def test_diagnostics_flag_a_collapsed_vae_and_a_one_mode_gan(rings):
    train, test = rings
    vae = ppgen.create("vae", train, latent_dim=4, hidden=(16,))
    with torch.no_grad():
        vae.to_posterior.weight[:4].zero_()  # the posterior mean ignores x: every unit inactive
    count, var = active_units(vae, test.x[:200])
    assert count == 0
    assert "posterior-collapse" in row_flags({"active_units": count, "latent_units": var.numel()})
    assert row_flags({"active_units": 3, "latent_units": 4}) == []

    one_mode = train.truth.means[0] + train.truth.std * torch.randn(1000, 2)  # a GAN that found one mode
    cover = mode_coverage(one_mode, train.truth.means, train.truth.std)
    assert cover["modes_covered"] == 1
    row = {"model": "gan", **cover, "off_support_fraction": off_support_fraction(one_mode, test.x)}
    assert row_flags(row) == ["mode-dropping"]
    far = torch.cat([one_mode, torch.full((50, 2), 100.0)])
    row["off_support_fraction"] = off_support_fraction(far, test.x)
    assert row["off_support_fraction"] == pytest.approx(50 / 1050)
    assert row_flags(row) == ["mode-dropping", "samples-off-support"]
    assert row_flags({"epochs": 3, "target_epochs": 10}) == ["under-trained"]
    assert row_flags({"non_finite_stop": "non-finite loss at epoch 2"}) == ["non-finite-stop"]
    rows = add_flags(
        [{"model": "independent", "test_nll_nats": 3.5}, {"model": "made", "test_nll_nats": 4.0}]
    )
    assert rows[0]["diagnostics"] == [] and rows[1]["diagnostics"] == ["under-trained"]


def test_seeds_are_summarized_as_mean_and_sd():
    rows = [
        {"model": "a", "seed": s, "test_nll_nats": v, "diagnostics": f}
        for s, v, f in [(0, 1.0, []), (1, 2.0, ["mode-dropping"]), (2, 3.0, [])]
    ]
    (s,) = summarize(rows)
    assert s["test_nll_nats"] == 2.0 and s["test_nll_nats_sd"] == 1.0 and s["seeds"] == [0, 1, 2]
    assert s["diagnostics"] == ["mode-dropping"]


def test_quick_compare_writes_a_self_contained_report(rings, presets, tmp_path, monkeypatch):
    train, test = rings
    monkeypatch.setenv("PPGEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "report"
    rows = compare(
        train, test, ["independent", "mixture", "gan"], out, quick=True, progress=False, log=lambda m: None
    )
    assert [r["model"] for r in rows] == ["independent", "mixture"]
    assert all("error" not in r and r["preset"] == "quick" for r in rows)
    mix = rows[1]
    assert mix["epochs"] == 3 and mix["train_seconds"] <= 30 and mix["eval_seconds"] > 0
    assert mix["curve"]["key"] == "val_nll" and mix["curve"]["points"] and mix["sampler"] == "ancestral"
    assert mix["test_nll_nats"] < rows[0]["test_nll_nats"]
    report = json.loads((out / "report.json").read_text())
    assert report["left_out"] == {"gan": "no quick preset"}
    for name in ("report.md", "samples.png", "nll.png", "quality_curve.png", "sampling_cost.png"):
        assert (out / name).is_file(), name
    md = (out / "report.md").read_text()
    assert "**gan**: left out (no quick preset)" in md and "What this shows" in md and "diagnostics" in md
    page = (out / "report.html").read_text()
    sources = re.findall(r"src=\"([^\"]*)\"", page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", page)
    assert "http" not in text and "href" not in text and "<link" not in text and "@import" not in text
    assert "<table>" in page and "independent" in page
    assert render_html([("p", "<b>")], out, "t").count("&lt;b&gt;") == 1  # text is escaped


def test_parallel_grid_gives_the_numbers_of_a_serial_one(rings):
    train, test = rings
    cells = [
        Cell("independent", fit={"epochs": 1}, **TINY),
        Cell("mixture", {"components": 8}, {"epochs": 2}, **TINY),
    ]
    serial = run_grid(cells, train, test, jobs=1, use_cache=False, progress=False)
    parallel = run_grid(cells, train, test, jobs=2, use_cache=False, progress=False)
    keys = ("test_nll_nats", "hq_fraction", "modes_covered", "epochs", "steps", "off_support_fraction")
    for (a, xa), (b, xb) in zip(serial, parallel):
        assert "error" not in a and "error" not in b
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
        assert torch.equal(xa, xb)
        assert [p["value"] for p in a["curve"]["points"]][-1] == [p["value"] for p in b["curve"]["points"]][
            -1
        ]


def test_demo_models_come_from_demo_models_else_every_model_with_a_preset(rings, presets, monkeypatch):
    from ppgen.app.commands import compare as command
    from ppgen.app.compare import applicable_models

    train, _ = rings
    monkeypatch.setattr(command, "DEMO_MODELS", {})
    with_preset = [n for n in ppgen.model_names() if ppgen.get(n).quick_preset("rings8") is not None]
    chosen = command._demo_models(train)
    assert {"independent", "mixture"} <= set(chosen) and "gan" not in chosen
    assert chosen == [n for n in with_preset if n in applicable_models(train)]
    monkeypatch.setattr(command, "DEMO_MODELS", {"rings8": ["mixture"]})
    assert command._demo_models(train) == ["mixture"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--seeds", "0,x"), "--seeds expects comma-separated integers"),
        (("--seeds", "1,1"), "--seeds expects distinct integers"),
        (("--jobs", "0"), "--jobs must be at least 1"),
    ],
)
def test_compare_rejects_bad_options_in_one_line(args, message, tmp_path, capsys):
    from ppgen.app.cli import main

    assert main(["compare", "--data", "rings8", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_markdown_sections_become_report_blocks_and_round_trip():
    from ppgen.app.report import markdown_blocks, render_markdown

    text = (
        "### Outliers\nfirst line\nsecond line\n\n| model | log p(x \\| y) |\n|---|---|\n| nade | 1.0 |\n\n"
        "![roc](/somewhere/uses_roc.png)\n- a note\n"
    )
    blocks = markdown_blocks(text)
    assert blocks == [
        ("h3", "Outliers"),
        ("p", "first line second line"),
        ("table", ["model", "log p(x | y)"], [["nade", "1.0"]]),
        ("img", "uses_roc.png", "roc"),
        ("ul", ["a note"]),
    ]
    assert markdown_blocks(render_markdown(blocks)) == blocks
