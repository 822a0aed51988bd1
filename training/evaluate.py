"""Every model on any source under leave-programs-out folds (the paper's Tables IV and V, held out honestly).

Each program is held out once, in every role (``cotenant.datasets.splits.leave_programs_out``), once per
partition of the programs into folds where there are several (``repeated_leave_programs_out``): every model
and reference is measured on the same folds, and the report gives each partition's figures beside their mean.
Writes ``evaluation.md``, ``evaluation.json`` and ``error_bands.png`` (MAE/MSE/RMSE mean +- std over folds in
pp, per-application breakdown, error-band histogram, the references, the dataset's noise floor) and logs them
to MLflow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from cotenant.datasets.lab.labels import noise_pp, noise_text
from cotenant.datasets.splits import Split
from cotenant.datasets.table import RunTable
from cotenant.training.config import ModelChoice, TrainConfig
from cotenant.training.fit import ANSWER_QUANTILES, FitOutcome, fit_model
from cotenant.training.learning_curve import (
    best_baseline,
    chosen_variant,
    curves_markdown,
    plot_curves,
    references_markdown,
    targets,
    targets_markdown,
)
from cotenant.training.metrics import BAND_NAMES, error_bands, errors_pp, mean_std, per_application
from cotenant.training.references import (
    constant_reference,
    repeat_reference,
    solo_relative_reference,
    utilisation_reference,
    work_rate_reference,
)
from cotenant.training.run import data_digest

# Characters MLflow refuses in metric names.
MLFLOW_UNSAFE = re.compile(r"[^\w\-. :/]")


def answer_rows(table: RunTable, model: str, fold: int, split: Split, outcome: FitOutcome) -> pl.DataFrame:
    """Every run one fold's model answered, a row each: its test runs (the interval calibrated) and its
    validation runs, each answered as the choice between variants read it (a model stopped early: by the
    copy stopped on the other half; the interval before calibration). For error analysis and for combining
    models' answers run by run, which the report's per-fold means cannot."""
    roles = [("test", outcome.test_runs, outcome.predicted, outcome.labels)]
    if outcome.validation_predicted is not None and outcome.validation_labels is not None:
        roles.append(
            ("validation", outcome.validation_runs, outcome.validation_predicted, outcome.validation_labels)
        )
    programs = dict(zip(table.runs["run_id"], table.runs["application"], strict=True))
    frames = [
        pl.DataFrame(
            {
                "model": model,
                "fold": fold,
                "partition": split.partition,
                "role": role,
                "run_id": runs,
                "application": [programs[run] for run in runs],
                "label": np.asarray(labels, dtype=np.float64),
            }
            | {name: np.asarray(answers, dtype=np.float64)[:, i] for i, name in enumerate(ANSWER_QUANTILES)}
        )
        for role, runs, answers, labels in roles
    ]
    return pl.concat(frames)


def evaluate_models(
    table: RunTable,
    models: list[str],
    splits: list[Split],
    base: TrainConfig,
    log: Any = print,
    answers: list[pl.DataFrame] | None = None,
) -> dict[str, Any]:
    """Every model of ``models`` on every split, as the report's dict; with ``answers`` (a list), each
    fold's runs and answers are appended to it too (``answer_rows``)."""
    from cotenant.models import MODELS

    digest = data_digest(table)
    report: dict[str, Any] = {
        "source": str(table.meta.get("source", base.source)),
        "data_digest": digest,
        "runs": table.runs.height,
        "applications": sorted(table.runs["application"].unique().to_list()),
        "noise_floor": table.meta.get("noise_floor"),
        "folds": [{"name": s.name, "partition": s.partition, "test_apps": s.test_apps} for s in splits],
        "epochs": base.epochs,
        "models": {},
    }
    for name in models:
        choice = ModelChoice.parse(name)
        name = choice.label
        per_fold: list[dict[str, Any]] = []
        predicted_all, labels_all, apps_all = [], [], []
        # A model's answers under other inputs on the same runs (placement-probes without probes).
        variants: dict[str, dict[str, list[Any]]] = {}
        for fold, split in enumerate(splits):
            cfg = choice.config(base)
            try:
                outcome = fit_model(table, split, cfg, digest)
            except ValueError as error:  # e.g. placement on a source without solo profiles
                log(f"{name} {split.name}: skipped ({error})")
                break
            scores = errors_pp(outcome.predicted, outcome.labels)
            scores["train_seconds"] = outcome.train_seconds
            fold_scores = {"fold": fold, "partition": split.partition, "test_apps": split.test_apps, **scores}
            metadata = outcome.predictor.metadata
            per_fold.append(
                fold_scores
                | {
                    "validation_mae": outcome.validation_mae,
                    # What calibrated the interval: validation runs, and training runs answered out of fold.
                    "calibration_runs": metadata.calibration_runs,
                    "calibration_training_runs": metadata.calibration_training_runs,
                }
            )
            predicted_all.append(outcome.predicted)
            labels_all.append(outcome.labels)
            if answers is not None:
                answers.append(answer_rows(table, name, fold, split, outcome))
            apps_all.extend(outcome.applications)
            for variant, predicted_variant in outcome.extra.get("variants", {}).items():
                # "<model>:<inputs>" named after this choice ("<model>[options]:<inputs>"): every choice of a
                # model has its own, none overwrites another's
                labelled = name + variant.removeprefix(choice.model)
                found = variants.setdefault(labelled, {"per_fold": [], "predicted": [], "labels": []})
                found["per_fold"].append(
                    {
                        "fold": fold,
                        "partition": split.partition,
                        "test_apps": split.test_apps,
                        **errors_pp(predicted_variant, outcome.labels),
                    }
                )
                found["predicted"].append(predicted_variant)
                found["labels"].append(outcome.labels)
            log(f"{name} {split.name}: MAE {scores['mae']:.2f} pp ({outcome.train_seconds:.1f} s)")
        if not per_fold:
            continue
        predicted, labels = np.concatenate(predicted_all), np.concatenate(labels_all)
        summary = {
            key: mean_std([s[key] for s in per_fold]) for key in ("mae", "mse", "rmse", "train_seconds")
        }
        validation = [f["validation_mae"] for f in per_fold if f["validation_mae"] is not None]
        report["models"][name] = {
            "task": MODELS[choice.model].task,
            "model": choice.model,
            "options": choice.options,
            "summary": {k: {"mean": m, "std": s} for k, (m, s) in summary.items()},
            # Over the folds' validation programs (inside training): what choosing between variants looks at.
            "validation_mae": mean_std(validation)[0] if len(validation) == len(per_fold) else None,
            "coverage": errors_pp(predicted, labels).get("coverage"),
            "per_fold": per_fold,
            "per_application": per_application(predicted, labels, apps_all),
            "error_bands": error_bands(predicted, labels),
        }
        for variant, found in variants.items():
            pooled, pooled_labels = np.concatenate(found["predicted"]), np.concatenate(found["labels"])
            folds = found["per_fold"]
            report["models"][variant] = {
                "task": MODELS[choice.model].task,
                "variant_of": name,  # the same model answering from fewer inputs: never a candidate itself
                "summary": {
                    key: dict(zip(("mean", "std"), mean_std([f[key] for f in folds]), strict=True))
                    for key in ("mae", "mse", "rmse")
                }
                | {"train_seconds": report["models"][name]["summary"]["train_seconds"]},
                "coverage": errors_pp(pooled, pooled_labels).get("coverage"),
                "per_fold": folds,
                "per_application": per_application(pooled, pooled_labels, apps_all),
                "error_bands": error_bands(pooled, pooled_labels),
            }
    report |= split_references(table, splits)
    report["repeat_reference"] = repeat_reference(table)
    report["work_rate_reference"] = work_rate_reference(table)
    if len({split.partition for split in splits}) > 1:
        report["partitions"] = partition_figures(report, table, splits)
    report["targets"] = targets(report)
    return report


def split_references(table: RunTable, splits: list[Split]) -> dict[str, Any]:
    """The no-learning references on ``splits``' test runs, by report key."""
    return {
        "constant_reference": constant_reference(table, splits),
        "utilisation_reference": utilisation_reference(table, splits),
        "fair_share_reference": utilisation_reference(table, splits, law="fair"),
        "solo_relative_reference": solo_relative_reference(table, splits),
    }


def partition_figures(report: dict[str, Any], table: RunTable, splits: list[Split]) -> list[dict[str, Any]]:
    """Per partition of the programs into folds: every model's and reference's MAE, mean over its folds."""
    figures = []
    for partition in sorted({split.partition for split in splits}):
        members = [split for split in splits if split.partition == partition]
        models = {
            name: mean_std([f["mae"] for f in folds])[0]
            for name, m in report["models"].items()
            if (folds := [f for f in m["per_fold"] if f["partition"] == partition])
        }
        references = {
            key: found["mean"] for key, found in split_references(table, members).items() if found is not None
        }
        figures.append(
            {
                "partition": partition,
                "test_apps": [split.test_apps for split in members],
                "models": models,
                "references": references,
            }
        )
    return figures


def markdown(report: dict[str, Any]) -> str:
    partitions = report.get("partitions") or []
    folds = f"{len(report['folds'])} folds" + (
        f": {len(partitions)} partitions of the programs x {len(report['folds']) // len(partitions)}"
        if partitions
        else ""
    )
    lines = [
        f"# Evaluation on `{report['source']}` (leave-programs-out, {folds})",
        "",
        f"Runs: {report['runs']}, applications: {len(report['applications'])}, data digest "
        f"`{report['data_digest'][:16]}`, epochs (neural): {report['epochs']}. "
        f"Noise floor of the labels: {noise_text(report['noise_floor'])}.",
        "",
        "Each program is held out in exactly one fold"
        + (" of each partition" if partitions else "")
        + ", in every role (target and neighbour); no statistic is fit on it. Held out per fold: "
        + "; ".join(f"{fold['name']}: {', '.join(fold['test_apps'])}" for fold in report["folds"])
        + ".",
        "",
        "Errors in percentage points of P (MSE in pp^2), mean +- std over folds. Validation MAE: on the "
        "validation programs inside each fold's training programs, the same runs for every model, each run "
        "answered by a model that never read it (a model stopped early: by its twin stopped on the other "
        "half of those programs); the only figure a choice between variants (`model[option=value]`) looks "
        "at.",
        *references_markdown(report),
    ]
    for task in ("monitoring", "placement"):
        rows = {n: m for n, m in report["models"].items() if m["task"] == task}
        if not rows:
            continue
        lines += [
            "",
            f"## {task}",
            "",
            "| model | MAE | MSE | RMSE | 80% interval coverage | validation MAE | train s |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, m in sorted(rows.items(), key=lambda item: item[1]["summary"]["mae"]["mean"]):
            s = m["summary"]
            cov, val = m["coverage"], m.get("validation_mae")
            lines.append(
                f"| {name} | {s['mae']['mean']:.2f} +- {s['mae']['std']:.2f} | {s['mse']['mean']:.1f} | "
                f"{s['rmse']['mean']:.2f} +- {s['rmse']['std']:.2f} | "
                f"{'-' if cov is None else f'{cov:.2f}'} | {'-' if val is None else f'{val:.2f}'} | "
                f"{s['train_seconds']['mean']:.1f} |"
            )
        lines += [
            "",
            "Error bands (share of test runs, pooled over folds):",
            "",
            "| model | " + " | ".join(BAND_NAMES) + " |",
            "|---|" + "---|" * len(BAND_NAMES),
        ]
        for name, m in rows.items():
            lines.append(f"| {name} | " + " | ".join(f"{m['error_bands'][b]:.2f}" for b in BAND_NAMES) + " |")
        lines += ["", "Per application (MAE pp, in the fold where it was held out):", ""]
        apps = sorted({a for m in rows.values() for a in m["per_application"]})
        lines += ["| model | " + " | ".join(apps) + " |", "|---|" + "---|" * len(apps)]
        for name, m in rows.items():
            lines.append(application_row(name, {a: v["mae"] for a, v in m["per_application"].items()}, apps))
        if task == "monitoring":
            lines += per_application_references(report, apps)
    lines += partitions_markdown(report) + targets_markdown(report) + curves_markdown(report)
    return "\n".join(lines) + "\n"


def application_row(label: str, values: dict[str, float | None], apps: list[str]) -> str:
    """One row of a per-application table: each of ``apps``' value in pp, ``-`` where it has none."""
    return (
        f"| {label} | "
        + " | ".join("-" if values.get(a) is None else f"{values[a]:.2f}" for a in apps)
        + " |"
    )


def per_application_references(report: dict[str, Any], apps: list[str]) -> list[str]:
    """Rows of the per-application table that measure the data rather than a model: each program's own
    labels' spread (solo vs solo, mean |1 - P|: an MAE near it is about what that program's labels allow)
    and the work rate closest to its labels (what the telemetry holds for it, read with its labels)."""
    floor = report.get("noise_floor")  # a synthetic source's is a number: no programs' spreads
    noise = (floor.get("by_application") if isinstance(floor, dict) else None) or {}
    rates = (report.get("work_rate_reference") or {}).get("programs") or {}
    rows = [
        (
            "reference: labels' spread, solo vs solo",
            {a: noise_pp(v, "mean_abs_deviation") for a, v in noise.items()},
        ),
        ("reference: closest work rate", {a: v["closest_mae"] for a, v in rates.items()}),
    ]
    return [
        application_row(label, values, apps)
        for label, values in rows
        if any(values.get(a) is not None for a in apps)
    ]


# The references a partition's row sets beside the models, by report key.
PARTITION_REFERENCES = {
    "solo_relative_reference": "solo-relative",
    "fair_share_reference": "fair share",
    "constant_reference": "constant",
}


def partitions_markdown(report: dict[str, Any]) -> list[str]:
    """Each partition's MAE of the chosen CloudFormer, the best baseline and the references: how much of a
    margin is the grouping's luck."""
    partitions = report.get("partitions") or []
    shown = [n for n in (chosen_variant(report, "cloudformer"), best_baseline(report)) if n]
    if not partitions or not shown:
        return []
    with_ratio = len(shown) == 2  # both a CloudFormer and a baseline in the report
    columns = shown + list(PARTITION_REFERENCES.values()) + (["CloudFormer / baseline"] if with_ratio else [])
    lines = [
        "",
        "## Partitions",
        "",
        "MAE (pp) per partition of the programs into folds, mean over its folds; the models as chosen on "
        "validation over every partition.",
        "",
        "| partition | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for partition in partitions:
        found, references = partition["models"], partition["references"]
        cells = [found.get(n) for n in shown] + [references.get(key) for key in PARTITION_REFERENCES]
        if with_ratio:
            cloudformer, baseline = (found.get(n) for n in shown)
            cells.append(cloudformer / baseline if cloudformer is not None and baseline else None)
        text = ["-" if value is None else f"{value:.2f}" for value in cells]
        lines.append(f"| {partition['partition']} | " + " | ".join(text) + " |")
    return lines


def plot_bands(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["models"])
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        shares = [report["models"][name]["error_bands"][b] for b in BAND_NAMES]
        ax.bar(np.arange(len(BAND_NAMES)) + i * width, shares, width, label=name)
    ax.set_xticks(np.arange(len(BAND_NAMES)) + 0.4 - width / 2, [f"{b} pp" for b in BAND_NAMES])
    ax.set_ylabel("share of test runs")
    ax.set_title(f"Absolute error bands on {report['source']} (leave-programs-out)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "evaluation.md", out / "evaluation.json", out / "error_bands.png"]
    paths[0].write_text(markdown(report))
    paths[1].write_text(json.dumps(report, indent=1, default=float) + "\n")
    plot_bands(report, paths[2])
    if report.get("learning_curves", {}).get("models"):
        paths.append(out / "learning_curves.png")
        plot_curves(report["learning_curves"], paths[-1])
    return paths


def log_report(paths: list[Path], report: dict[str, Any], tracking_uri: str, experiment: str) -> None:
    import mlflow
    from cotenant.training.tracking import use_experiment

    use_experiment(experiment, tracking_uri)
    with mlflow.start_run(run_name=f"evaluate-{report['source']}"):
        mlflow.log_params(
            {
                "source": report["source"],
                "data_digest": report["data_digest"],
                "folds": len(report["folds"]),
                "epochs": report["epochs"],
            }
        )
        for name, m in report["models"].items():
            key = MLFLOW_UNSAFE.sub("_", name)  # model[members=3] -> model_members_3_
            mlflow.log_metrics(
                {
                    f"{key}.mae_mean": m["summary"]["mae"]["mean"],
                    f"{key}.mae_std": m["summary"]["mae"]["std"],
                    f"{key}.rmse_mean": m["summary"]["rmse"]["mean"],
                }
            )
        for path in paths:
            mlflow.log_artifact(str(path))
