"""What each density is good for, on digits: outlier AUROC, Bayes-rule accuracy, reject option, completion.

Short trainings on the train split (fixed epochs, chosen before looking at any test number; nothing is
tuned on the test split), then :func:`ppgen.app.uses_section.uses_section` on the test split. Prints the
markdown of the three sections, the CPU seconds of each fit, and writes the figures and report.json.

    OMP_NUM_THREADS=1 python benchmarks/uses_of_density.py --out /tmp/uses
"""

import argparse
import json
import time
from pathlib import Path

import ppgen
from ppgen.app.threads import add_threads_argument, set_threads
from ppgen.app.uses_section import uses_section
from ppgen.inference.tasks.anomaly import held_out_class
from ppgen.inference.tasks.classify import fit_per_class

# name -> (registry key, config, fit options): the quick budgets of this benchmark
MODELS = {
    "independent": ("independent", {}, {}),
    "bayesnet": ("bayesnet", {"structure": "markov", "order": 2}, {}),
    "mixture": ("mixture", {"components": 30}, {"epochs": 60}),
    "made": ("made", {"hidden_sizes": [256], "num_masks": 1}, {"epochs": 60}),
    "made-cond": ("made", {"hidden_sizes": [256], "num_masks": 1, "conditional": True}, {"epochs": 60}),
    "nade": ("nade", {"hidden": 64}, {"epochs": 20}),
    "vae": ("vae", {}, {"epochs": 100}),
    "cvae": ("cvae", {}, {"epochs": 100}),
    "gan": ("gan", {}, {"epochs": 100}),
}
PER_CLASS = {
    "bayesnet": ("bayesnet", {"structure": "markov", "order": 2}, {}),
    "mixture": ("mixture", {"components": 5}, {"epochs": 60}),
}
HELD_OUT = ("independent", "bayesnet", "mixture", "made", "vae")


def fit_all(specs: dict, train, names=None) -> tuple[dict, dict]:
    models, seconds = {}, {}
    for name, (key, config, options) in specs.items():
        if names is not None and name not in names:
            continue
        ppgen.seed_everything(0)
        model = ppgen.create(key, train, **config)
        start = time.process_time()
        ppgen.fit(model, train, progress=False, **options)
        seconds[name] = time.process_time() - start
        models[name] = model.eval()
        print(f"fit {name}: {seconds[name]:.1f} CPU s", flush=True)
    return models, seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="uses_out")
    parser.add_argument(
        "--held-out", type=int, default=9, help="the class left out of training for one outlier set"
    )
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="one epoch each: checks that it runs")
    add_threads_argument(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
    if args.smoke:
        for specs in (MODELS, PER_CLASS):
            specs.update({k: (key, config, {"epochs": 1}) for k, (key, config, _) in specs.items()})
    models, seconds = fit_all(MODELS, train)
    per_class, start = {}, time.process_time()
    for name, (key, config, options) in PER_CLASS.items():
        ppgen.seed_everything(0)
        per_class[name] = fit_per_class(key, train, config, **options)
        seconds[f"{name} (one per class)"] = time.process_time() - start
        start = time.process_time()
    nine, _, _ = held_out_class(train, test, args.held_out)
    held, held_seconds = fit_all(MODELS, nine, HELD_OUT)
    seconds.update({f"{k} (9 classes)": v for k, v in held_seconds.items()})
    start = time.process_time()
    ppgen.seed_everything(0)
    held_out = {"label": args.held_out, "models": held}
    result = uses_section(models, train, test, out, per_class, held_out, num_samples=args.num_samples)
    seconds["uses_section"] = time.process_time() - start
    print(result["markdown"])
    print("\nCPU seconds (1 thread):", json.dumps({k: round(v, 1) for k, v in seconds.items()}))
    (out / "report.md").write_text(result["markdown"])
    (out / "report.json").write_text(
        json.dumps({**result["json"], "cpu_seconds": seconds}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
