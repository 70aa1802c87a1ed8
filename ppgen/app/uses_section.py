"""The report's sections on what each density is good for: outliers, Bayes-rule classification, completion.

:func:`uses_section` takes the trained models of a comparison and returns the markdown, the numbers and
the figures of three sections, each closed by a generated sentence saying what it shows.
"""

import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ppgen.app.plots.uses import completion_figure, reject_figure, roc_figure
from ppgen.data import Dataset
from ppgen.errors import PPGenError
from ppgen.inference.tasks import anomaly, classify
from ppgen.inference.tasks.complete import complete, completion_metrics, hidden_mask

__all__ = ["uses_section", "outlier_section", "classification_section", "completion_section"]

COVERAGES = (0.25, 0.5, 0.75, 1.0)


def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def _inliers_and_outliers(train: Dataset, test: Dataset, seed: int) -> tuple[torch.Tensor, dict] | None:
    if test.kind == "binary" and test.spec.is_image:
        return test.x, anomaly.image_outliers(test, seed)
    if test.kind == "continuous" and test.event_shape == (2,):
        return test.x[:2000], {"off-support": anomaly.off_support(train, test, 2000, seed)}
    return None


def outlier_section(
    models: dict,
    train: Dataset,
    test: Dataset,
    out_dir: Path,
    held_out: dict | None = None,
    num_samples: int = 100,
    seed: int = 0,
) -> dict:
    r"""AUROC of every model's outlier score against each outlier set; ROC figure.

    Arguments:
        held_out: optional {"label": c, "models": name -> model trained without class c}: adds a column
            where the test examples of class c are the outliers of the other test examples.
    """
    found = _inliers_and_outliers(train, test, seed)
    if found is None:
        return {"markdown": "", "json": {}, "figures": []}
    inliers, outliers = found
    table = anomaly.anomaly_table(models, inliers, outliers, num_samples)
    sets = list(outliers)
    if held_out:
        label = held_out["label"]
        _, kept, odd = anomaly.held_out_class(train, test, label)
        extra = anomaly.anomaly_table(held_out["models"], kept.x, {f"class {label}": odd}, num_samples)
        for name, row in extra.items():
            if name in table and row.get("auroc"):
                table[name]["auroc"].update(row["auroc"])
                table[name]["roc"].update(row["roc"])
        sets.append(f"class {label}")
    lines = [
        "| model | density | score | " + " | ".join(f"AUROC {s}" for s in sets) + " |",
        "|---|---|---|" + "---|" * len(sets),
    ]
    for name, row in table.items():
        cells = [_fmt(row.get("auroc", {}).get(s)) for s in sets]
        score = row["score"] or f"none ({row['reason']})"
        lines.append(f"| {name} | {models[name].density} | {score} | " + " | ".join(cells) + " |")
    figures = [_save(roc_figure(table, "outlier rejection: ROC per outlier set"), out_dir / "uses_roc.png")]
    sentence = _outlier_sentence(models, table, sets)
    json_rows = {
        n: {"score": r["score"], "auroc": r.get("auroc"), "reason": r.get("reason")} for n, r in table.items()
    }
    md = "\n".join(
        [
            "### Outlier rejection",
            "",
            f"In-distribution: {len(inliers)} test examples. Outlier sets: "
            + ", ".join(f"{s} ({len(x)})" for s, x in outliers.items())
            + (
                f", class {held_out['label']} held out of training (models refit on the other classes)"
                if held_out
                else ""
            )
            + ". AUROC of telling outliers from test examples by the score (1 = perfect, 0.5 = chance); "
            "higher score = more anomalous; every model is listed.",
            "",
            *lines,
            "",
            f"**What this shows.** {sentence}",
        ]
    )
    return {"markdown": md, "json": {"sets": sets, "models": json_rows}, "figures": figures}


def _outlier_sentence(models: dict, table: dict, sets: list) -> str:
    scored = {n: r for n, r in table.items() if r.get("auroc")}
    if not scored:
        return "No model gives an outlier score on these data."
    first = sets[0]
    common = [s for s in sets if all(s in r["auroc"] for r in scored.values())] or [first]
    mean = lambda r: sum(r["auroc"].get(s, 0) for s in common) / len(common)  # noqa: E731
    parts = []
    exact = {n: r for n, r in scored.items() if models[n].density == "exact"}
    if exact:
        best = max(exact, key=lambda n: mean(exact[n]))
        rest = ", ".join(
            f"{_fmt(exact[best]['auroc'][s])} on {s}" for s in sets[1:] if s in exact[best]["auroc"]
        )
        parts.append(
            f"the best exact density on average ({best}) reaches AUROC "
            f"{_fmt(exact[best]['auroc'][first])} on {first}" + (f" and {rest}" if rest else "")
        )
    for kind, words in [("lower-bound", "bound"), ("unnormalized", "energy"), ("implicit", "discriminator")]:
        group = {n: r for n, r in scored.items() if models[n].density == kind}
        if group:
            best = max(group, key=lambda n: mean(group[n]))
            parts.append(f"the best {words} score ({best}) {_fmt(group[best]['auroc'][first])} on {first}")
    if "independent" in scored:
        worse = [
            n
            for n, r in scored.items()
            if n != "independent"
            and any(r["auroc"][s] < scored["independent"]["auroc"].get(s, 0) for s in r["auroc"])
        ]
        if worse:
            parts.append(f"{', '.join(worse)} fall below the pixel-independent model on at least one set")
    hard = min(sets, key=lambda s: max(r["auroc"].get(s, 0) for r in scored.values()))
    best_hard = max(r["auroc"].get(hard, 0) for r in scored.values())
    parts.append(f"the hardest set is {hard} (best AUROC {_fmt(best_hard)})")
    return "On these data " + "; ".join(parts) + "."


def classification_section(
    models: dict,
    train: Dataset,
    test: Dataset,
    out_dir: Path,
    per_class: dict | None = None,
    num_samples: int = 100,
    seed: int = 0,
) -> dict:
    r"""Bayes-rule accuracy of every conditional model (and of ``per_class``: name -> model per class) beside
    logistic regression and an MLP; the reject option on the test set mixed with outliers."""
    if test.y is None or not test.num_classes or not (test.kind == "binary" and test.spec.is_image):
        return {"markdown": "", "json": {}, "figures": []}
    log_prior = classify.class_log_prior(train.y, train.num_classes)
    generative = {
        n: m for n, m in models.items() if getattr(m, "conditional", False) and m.density != "implicit"
    }
    generative.update({f"{n} (one per class)": ms for n, ms in (per_class or {}).items()})
    outliers = anomaly.image_outliers(test, seed)
    half = len(test) // 2
    mixed = torch.cat([test.x, outliers["noise"][:half], outliers["flip10"][half : 2 * half]])
    is_inlier = torch.arange(len(mixed)) < len(test)
    truth = torch.cat([test.y, torch.full((len(mixed) - len(test),), -1)])
    rows, curves = [], {}
    for name, m in generative.items():
        loglik, kind = classify.class_log_likelihoods(m, mixed, test.num_classes, num_samples)
        pred, _, log_px = classify.bayes_classify(loglik, log_prior)
        accuracy = float((pred[is_inlier] == test.y).double().mean())
        rows.append(
            {"classifier": name, "type": "generative (Bayes rule)", "likelihood": kind, "accuracy": accuracy}
        )
        curves[name] = classify.reject_curve(pred == truth, log_px)
    start = time.process_time()
    for name, clf in classify.discriminative_baselines(train, seed).items():
        proba = torch.as_tensor(clf.predict_proba(mixed.reshape(len(mixed), -1).numpy()))
        pred = proba.argmax(1)
        accuracy = float((pred[is_inlier] == test.y).double().mean())
        rows.append(
            {
                "classifier": name,
                "type": "discriminative",
                "likelihood": "none (p(y | x) only)",
                "accuracy": accuracy,
            }
        )
        curves[name] = classify.reject_curve(pred == truth, proba.max(1).values)
    baseline_seconds = time.process_time() - start
    for row in rows:
        cov, acc = curves[row["classifier"]]
        row["area"] = float(acc.mean())
        row["at_coverage"] = {str(c): float(acc[max(int(round(c * len(acc))) - 1, 0)]) for c in COVERAGES}
    lines = [
        "| classifier | type | log p(x \\| y) | test accuracy | "
        + " | ".join(f"acc. @ {c:.0%} coverage" for c in COVERAGES)
        + " | area under reject curve |",
        "|---|---|---|---|" + "---|" * (len(COVERAGES) + 1),
    ]
    for r in rows:
        lines.append(
            f"| {r['classifier']} | {r['type']} | {_cell(r['likelihood'])} | {_fmt(r['accuracy'])} | "
            + " | ".join(_fmt(r["at_coverage"][str(c)]) for c in COVERAGES)
            + f" | {_fmt(r['area'])} |"
        )
    figures = [
        _save(
            reject_figure(curves, "reject option: test digits mixed with outliers"),
            out_dir / "uses_reject.png",
        )
    ]
    md = "\n".join(
        [
            "### Bayes-rule classification and the reject option",
            "",
            "Generative classifiers predict argmax_y log p(x | y) + log p(y) (p(y): training label "
            f"frequencies); test accuracy on the {len(test)} test digits. Reject option: the test digits "
            f"mixed with {half} uniform-noise images and {half} digits with 10% of pixels flipped (an "
            "answered outlier counts as an error); inputs are answered in order of log p(x) (generative) "
            "or of the max-softmax (discriminative), so at 50% coverage a perfect score answers only test "
            f"digits. Baselines fitted in {baseline_seconds:.1f} CPU s.",
            "",
            *lines,
            "",
            f"**What this shows.** {_classification_sentence(rows)}",
        ]
    )
    return {"markdown": md, "json": {"rows": rows}, "figures": figures}


def _classification_sentence(rows: list) -> str:
    gen = [r for r in rows if r["type"].startswith("generative")]
    disc = {r["classifier"]: r for r in rows if r["type"] == "discriminative"}
    if not gen:
        return (
            "No model here models p(x | y); the discriminative baselines reach "
            + ", ".join(f"{n} {_fmt(r['accuracy'])}" for n, r in disc.items())
            + "."
        )
    best = max(gen, key=lambda r: r["accuracy"])
    lr = disc.get("logistic regression")
    gap = (
        ""
        if lr is None
        else f" ({100 * (best['accuracy'] - lr['accuracy']):+.1f} points against logistic regression's "
        f"{_fmt(lr['accuracy'])})"
    )
    best_disc = max(disc.values(), key=lambda r: r["area"])
    verdict = "above" if best["area"] > best_disc["area"] else "not above"
    return (
        f"The best generative classifier, {best['classifier']}, reaches {_fmt(best['accuracy'])}{gap}; "
        f"refusing inputs of low p(x), its reject curve (area {_fmt(best['area'])}) is {verdict} the best "
        f"discriminative one's ({best_disc['classifier']}, area {_fmt(best_disc['area'])}), whose "
        "max-softmax "
        "is the only score it has for an input it was never trained to refuse."
    )


def completion_section(
    models: dict,
    test: Dataset,
    out_dir: Path,
    masks=("bottom", "random:0.5"),
    n: int = 100,
    n_show: int = 8,
    num_samples: int = 100,
    seed: int = 0,
) -> dict:
    r"""Completion of ``n`` test examples per mask by every model that can: pixel accuracy, NLL."""
    if not (test.spec.num_categories and test.spec.is_image):
        return {"markdown": "", "json": {}, "figures": []}
    part = test.subset(n)
    rows, shown = [], {}
    for mask in masks:
        hidden = hidden_mask(mask, part.event_shape, len(part), seed)
        for name, m in models.items():
            start = time.process_time()
            try:
                x, info = complete(m, part.x, hidden, y=part.y, num_particles=num_samples, seed=seed)
            except PPGenError as e:
                rows.append({"model": name, "mask": mask, "method": f"none: {e}"})
                continue
            metrics = completion_metrics(m, part.x, x, hidden, info, y=part.y, num_samples=num_samples)
            rows.append(
                {
                    "model": name,
                    "mask": mask,
                    "method": info["method"],
                    **metrics,
                    "cpu_seconds": time.process_time() - start,
                }
            )
            if mask == masks[0]:
                shown[name] = x[:n_show].cpu()
    lines = [
        "| model | mask | method | pixel accuracy (hidden) | -log p(x_h \\| x_o), nats | how | CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['mask']} | {_cell(r['method'])} | {_fmt(r.get('pixel_accuracy'))} | "
            f"{_fmt(r.get('conditional_nll'), 2)} | {_cell(r.get('conditional_nll_kind') or '–')} | "
            f"{_fmt(r.get('cpu_seconds'), 1)} |"
        )
    figures = []
    if shown:
        hidden = hidden_mask(masks[0], part.event_shape, len(part), seed)[:n_show]
        levels = None if test.kind == "binary" else test.spec.num_categories
        figures.append(
            _save(completion_figure(part.x[:n_show], hidden, shown, levels), out_dir / "uses_completion.png")
        )
    md = "\n".join(
        [
            "### Completion (inpainting)",
            "",
            f"The first {len(part)} test examples, with masks {', '.join(masks)} (the named half hidden; "
            "random:P hides each pixel with probability P). Pixel accuracy of one completion against the "
            "truth over the hidden pixels; "
            "the conditional NLL -log p(x_h | x_o) = log p(x_o) - log p(x) where the model gives both terms.",
            "",
            *lines,
            "",
            f"**What this shows.** {_completion_sentence(rows, masks)}",
        ]
    )
    return {"markdown": md, "json": {"rows": rows}, "figures": figures}


def _completion_sentence(rows: list, masks) -> str:
    done = [r for r in rows if r.get("pixel_accuracy") is not None]
    if not done:
        return "No model here can complete these data."
    parts = []
    for mask in masks:
        here = [r for r in done if r["mask"] == mask]
        if here:
            best = max(here, key=lambda r: r["pixel_accuracy"])
            parts.append(
                f"with mask {mask} the most accurate completion is {best['model']}'s "
                f"({_fmt(best['pixel_accuracy'])}, {best['method'].split(',')[0].split(' (')[0]})"
            )
    refused = sorted({r["model"] for r in rows if r["method"].startswith("none")})
    tail = f"; {', '.join(refused)} cannot complete" if refused else ""
    return (
        "Exact conditionals come from Bayes nets, mixtures and autoregressive models (by ordering or "
        "importance resampling), approximate ones from MCMC on a VAE, from RePaint's replacement in a "
        "diffusion model and from Langevin chains with clamped pixels on a score or energy model, and "
        "none from a GAN (z fitted to the observed pixels); " + "; ".join(parts) + tail + "."
    )


def uses_section(
    models: dict,
    train: Dataset,
    test: Dataset,
    out_dir,
    per_class: dict | None = None,
    held_out: dict | None = None,
    num_samples: int = 100,
    seed: int = 0,
    n_complete: int = 100,
) -> dict:
    r"""The report's sections on what each density is good for, from a comparison's trained models.

    Arguments:
        models: name -> model fitted on ``train``.
        train, test: the comparison's splits (the test split scores everything; nothing is tuned on it).
        out_dir: where the figures go.
        per_class: optional name -> list of one unconditional model per class (for Bayes-rule classification
            by families without a conditional variant; see ``ppgen.inference.tasks.classify.fit_per_class``).
        held_out: optional {"label": c, "models": name -> model fitted without class c} for the held-out-class
            outlier set.
        num_samples: K of importance-sampled estimates (IWAE, log p(x_o)).
        n_complete: the number of test examples completed per mask.

    Returns:
        {"markdown": the sections, "json": their numbers, "figures": the paths of the figures}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for m in models.values():
        m.eval()
    parts = {
        "outliers": outlier_section(models, train, test, out_dir, held_out, num_samples, seed),
        "classification": classification_section(models, train, test, out_dir, per_class, num_samples, seed),
        "completion": completion_section(
            models, test, out_dir, n=n_complete, num_samples=num_samples, seed=seed
        ),
    }
    md = "\n\n".join(p["markdown"] for p in parts.values() if p["markdown"])
    return {
        "markdown": ("## What each density is good for\n\n" + md) if md else "",
        "json": {k: p["json"] for k, p in parts.items()},
        "figures": [f for p in parts.values() for f in p["figures"]],
    }
