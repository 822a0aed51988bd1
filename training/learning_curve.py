"""What more data would buy: MAE against the number of training applications and the share of their runs.

Held-out programs stay fixed per fold (the same leave-programs-out folds as the evaluation), so the last
point of each curve is the evaluation itself. If the error keeps falling as applications are added but
not as runs are, the data needs more *kinds* of workload, not more repeats; if neither moves, the labels'
noise floor is the limit. Beside them, the same held-out runs answered with their programs seen (half of
each held-out program's configurations moved into training, ``splits.programs_seen``): what the inputs say
of a program known, against what carries to one that is not. Also the report's targets: the paper's
margins, computed from a report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from cotenant.datasets.lab.labels import noise_pp
from cotenant.datasets.splits import Split, programs_seen
from cotenant.datasets.table import RunTable
from cotenant.training.config import ModelChoice, TrainConfig
from cotenant.training.fit import MEDIAN_ANSWER, FitOutcome, fit_model
from cotenant.training.metrics import errors_pp, mean_std
from cotenant.training.references import CLOSER_RATE_PP
from cotenant.training.run import data_digest

BEST_BASELINE = "best-baseline"  # resolved to the monitoring baseline with the lowest MAE in the report
# CloudFormer's competitors: the paper's baselines, gradient boosting, and the servable no-learning answer it
# must beat to be worth serving (solo-relative).
BASELINES = (
    "linear",
    "gamma-glm",
    "decision-tree",
    "random-forest",
    "hist-gradient-boosting",
    "lstm",
    "solo-relative",
)
PAPER_MARGIN = 0.72  # CloudFormer MAE / best baseline MAE in the paper (Table IV: 27.6% below the forest)
REQUIRED_MARGIN = (
    0.85  # what the monitoring champion must reach against the best baseline (the paper's stays the goal)
)
NOISE_MULTIPLE = 1.5  # its MAE at most this many times the labels' noise-floor median
COVERAGE_RANGE = (0.75, 0.85)  # where an 80 % interval's held-out coverage must fall
PLACEMENT_MARGIN = 1.2  # placement MAE within this factor of the monitoring model's
TARGET_MAE_PP = 5.0


def chosen_variant(report: dict[str, Any], model: str) -> str | None:
    """Of the report's entries training ``model`` (with any options), the one with the lowest MAE on the
    folds' validation programs: the only data a choice between variants may look at. Without validation
    figures, the plain model."""
    entries = {
        name: m
        for name, m in report["models"].items()
        if m.get("model", name) == model and not m.get("variant_of")
    }
    scored = {n: m["validation_mae"] for n, m in entries.items() if m.get("validation_mae") is not None}
    if scored:
        return min(scored, key=lambda n: scored[n])
    return model if model in entries else None


def best_baseline(report: dict[str, Any]) -> str | None:
    """The competitor CloudFormer's targets are judged against: every baseline in its variant chosen on
    validation programs (as CloudFormer's is: ``hist-gradient-boosting[solo_prior=True]`` competes where
    validation prefers it to the plain one), then the one of them with the lowest MAE, the hardest
    comparison."""
    chosen = [chosen_variant(report, baseline) for baseline in BASELINES]
    maes = {n: report["models"][n]["summary"]["mae"]["mean"] for n in chosen if n}
    return min(maes, key=lambda n: maes[n]) if maes else None


def fewer_applications(table: RunTable, split: Split, keep: int, seed: int) -> Split:
    order = np.random.default_rng(seed).permutation(split.train_apps)[:keep]
    kept = set(table.runs.filter(table.runs["application"].is_in(order.tolist()))["run_id"])
    runs = [r for r in split.train_runs if r in kept]
    return Split(f"{split.name}-apps{keep}", runs, split.test_runs, sorted(order.tolist()), split.test_apps)


def fewer_runs(table: RunTable, split: Split, fraction: float, seed: int) -> Split:
    """The same training applications, each with ``fraction`` of its runs (at least one)."""
    rng = np.random.default_rng(seed)
    app_of = dict(zip(table.runs["run_id"], table.runs["application"], strict=True))
    runs: list[str] = []
    for app in split.train_apps:
        own = [r for r in split.train_runs if app_of[r] == app]
        keep = max(1, round(fraction * len(own)))
        runs += sorted(rng.choice(own, size=keep, replace=False).tolist())
    return Split(f"{split.name}-runs{fraction:g}", runs, split.test_runs, split.train_apps, split.test_apps)


def learning_curves(
    table: RunTable,
    report: dict[str, Any],
    models: list[str],
    splits: list[Split],
    app_counts: list[int],
    fractions: list[float],
    base: TrainConfig,
    log: Any = print,
    seen: bool = True,
    answers: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Per model: MAE mean +- std over ``splits`` per training-application count and per run fraction, and
    with ``seen`` on the same held-out runs with their programs unseen and seen (``programs_seen``: paired,
    the fold's own training against it with half of each held-out program's configurations). Unseen, those
    runs are the evaluation's own answers where ``answers`` (its ``answer_rows``) has them, as the curves'
    last points are its MAEs: the same training, not fitted again. A model the report evaluated in several
    variants is drawn in the one chosen on validation programs (``chosen_variant``), the one its targets
    quote."""
    digest = data_digest(table)
    names = [best_baseline(report) if m == BEST_BASELINE else chosen_variant(report, m) or m for m in models]
    curves: dict[str, Any] = {"folds": [split.name for split in splits], "models": {}}
    for name in [n for n in names if n and n in report["models"]]:
        full = {s["fold"]: s["mae"] for s in report["models"][name]["per_fold"]}
        points: dict[str, dict[float, list[float]]] = {"apps": {}, "runs": {}}
        paired: dict[str, list[float]] = {"unseen": [], "seen": []}
        by_program: dict[str, dict[str, list[float]]] = {"unseen": {}, "seen": {}}  # |error| pp per run
        for fold, split in enumerate(splits):
            if fold not in full:
                continue
            n_train = len(split.train_apps)
            cfg = ModelChoice.parse(name).config(base)
            variants = [("apps", float(k), fewer_applications(table, split, k, fold)) for k in app_counts]
            variants += [("runs", f, fewer_runs(table, split, f, fold)) for f in fractions]
            for kind, size, smaller in variants:
                if kind == "apps" and not 1 <= size < n_train:
                    continue
                outcome = fit_model(table, smaller, cfg, digest)
                mae = errors_pp(outcome.predicted, outcome.labels)["mae"]
                points[kind].setdefault(size, []).append(mae)
                runs = len(smaller.train_runs)
                log(f"curve {name} {split.name} {kind}={size:g}: MAE {mae:.2f} pp ({runs} training runs)")
            points["apps"].setdefault(float(n_train), []).append(full[fold])
            points["runs"].setdefault(1.0, []).append(full[fold])
            if seen:
                seen_split, unseen_split = programs_seen(table, split, fold)
                if seen_split.test_runs:
                    for key, chosen in (("unseen", unseen_split), ("seen", seen_split)):
                        errors = (
                            evaluation_errors(answers, name, fold, chosen.test_runs)
                            if key == "unseen"
                            else None
                        )
                        if errors is None:
                            errors = outcome_errors(fit_model(table, chosen, cfg, digest))
                        paired[key].append(float(errors["error"].to_numpy().mean()))
                        for program, error in errors.iter_rows():
                            by_program[key].setdefault(program, []).append(error)
                    log(
                        f"curve {name} {split.name} programs seen: MAE {paired['seen'][-1]:.2f} pp against "
                        f"{paired['unseen'][-1]:.2f} unseen ({len(seen_split.test_runs)} held-out runs)"
                    )
        curves["models"][name] = {
            "applications": {f"{k:g}": mean_std(v) for k, v in sorted(points["apps"].items())},
            "run_fraction": {f"{k:g}": mean_std(v) for k, v in sorted(points["runs"].items())},
        }
        if paired["seen"]:
            gap = [u - k for u, k in zip(paired["unseen"], paired["seen"], strict=True)]
            curves["models"][name]["programs_seen"] = {
                "unseen": mean_std(paired["unseen"]),
                "seen": mean_std(paired["seen"]),
                "unseen_minus_seen": mean_std(gap),
                "folds": len(gap),
                # Per program, over its held-out runs in every fold: where the unseen error is its own.
                "by_application": {
                    program: {
                        "unseen": float(np.mean(errors)),
                        "seen": float(np.mean(by_program["seen"][program])),
                        "runs": len(errors),
                    }
                    for program, errors in sorted(by_program["unseen"].items())
                },
            }
    return curves


def outcome_errors(outcome: FitOutcome) -> pl.DataFrame:
    """``application`` and ``error`` (|median - label| in pp) for every test run of a fit."""
    median = outcome.predicted[:, outcome.predicted.shape[1] // 2]
    error = 100 * np.abs(median - outcome.labels)
    return pl.DataFrame({"application": outcome.applications, "error": error.astype(np.float64)})


def evaluation_errors(
    answers: pl.DataFrame | None, model: str, fold: int, runs: list[str]
) -> pl.DataFrame | None:
    """``outcome_errors`` of ``runs`` as the evaluation's fold ``fold`` answered them (its test role in
    ``answers``), or None where the answers lack any of them."""
    if answers is None:
        return None
    found = answers.filter(
        (pl.col("model") == model)
        & (pl.col("fold") == fold)
        & (pl.col("role") == "test")
        & pl.col("run_id").is_in(runs)
    )
    if found.height != len(runs):
        return None
    return found.select("application", ((pl.col(MEDIAN_ANSWER) - pl.col("label")).abs() * 100).alias("error"))


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The paper's margins on this source: ratios of mean MAEs over the same folds."""
    models = report["models"]

    def mae(name: str | None) -> float | None:
        return models[name]["summary"]["mae"]["mean"] if name in models else None

    baseline = best_baseline(report)
    variant = chosen_variant(report, "cloudformer")
    cloudformer, base_mae, placement = mae(variant), mae(baseline), mae("placement")
    noise_median = noise_pp(report.get("noise_floor"), "median_abs_deviation")
    coverage = models[variant]["coverage"] if variant else None
    by_partition = partition_ratios(report, variant, baseline)
    placement_models = {
        n: m["summary"]["mae"]["mean"]
        for n, m in models.items()
        if m["task"] == "placement" and not m.get("variant_of")
    }
    best_placement = min(placement_models, key=lambda n: placement_models[n]) if placement_models else None
    best_placement_mae = placement_models.get(best_placement or "")
    return {
        "best_baseline": baseline,
        "cloudformer_variant": variant,
        "cloudformer_mae": cloudformer,
        "cloudformer_coverage": coverage,
        "noise_floor_median_pp": noise_median,
        "cloudformer_over_noise_floor": cloudformer / noise_median if cloudformer and noise_median else None,
        "noise_floor_mean_pp": noise_pp(report.get("noise_floor"), "mean_abs_deviation"),
        "best_baseline_mae": base_mae,
        "cloudformer_over_best_baseline": cloudformer / base_mae if cloudformer and base_mae else None,
        # The same ratio in each partition of the programs into folds (a report over several partitions).
        "cloudformer_over_best_baseline_by_partition": by_partition,
        "paper_margin": PAPER_MARGIN,
        "required_margin": REQUIRED_MARGIN,
        "cloudformer_below_target": cloudformer < TARGET_MAE_PP if cloudformer else None,
        "target_mae_pp": TARGET_MAE_PP,
        "placement_mae": placement,
        "placement_over_cloudformer": placement / cloudformer if placement and cloudformer else None,
        "best_placement_model": best_placement,
        "best_placement_over_cloudformer": (
            best_placement_mae / cloudformer if best_placement_mae and cloudformer else None
        ),
        "placement_margin": PLACEMENT_MARGIN,
    }


def partition_ratios(report: dict[str, Any], model: str | None, reference: str | None) -> list[float]:
    """``model``'s MAE over ``reference``'s in each partition of the programs into folds that has both."""
    return [
        found[model] / found[reference]
        for partition in report.get("partitions", [])
        if model in (found := partition["models"]) and reference in found and found[reference]
    ]


def _ratio(value: float | None, goal: float) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} (target <= {goal:g}: {'met' if value <= goal else 'not met'})"


def targets_markdown(report: dict[str, Any]) -> list[str]:
    t = targets(report)
    if t["cloudformer_mae"] is None:
        return []
    below = "met" if t["cloudformer_below_target"] else "not met"
    baseline_mae = t["best_baseline_mae"] or float("nan")
    margin = _ratio(t["cloudformer_over_best_baseline"], REQUIRED_MARGIN)
    placement = _ratio(t["placement_over_cloudformer"], PLACEMENT_MARGIN)
    variant = t["cloudformer_variant"]
    coverage = t["cloudformer_coverage"]
    low, high = COVERAGE_RANGE
    lines = [
        "",
        "## Targets",
        "",
        f"- CloudFormer as chosen on the validation programs: {variant}.",
        f"- its MAE / best baseline MAE ({t['best_baseline']}, {baseline_mae:.2f} pp): {margin}; the paper's "
        f"{PAPER_MARGIN:g} stays the goal."
        + (
            ""
            if len(by_partition := t["cloudformer_over_best_baseline_by_partition"]) < 2
            else f" Partition by partition (the same choices): median {float(np.median(by_partition)):.2f}, "
            f"from {min(by_partition):.2f} to {max(by_partition):.2f}."
        ),
        f"- its MAE / the noise floor's median: {_ratio(t['cloudformer_over_noise_floor'], NOISE_MULTIPLE)}"
        + (
            ""
            if t["noise_floor_mean_pp"] is None
            else f" (the labels' mean solo-vs-solo |1 - P| is {t['noise_floor_mean_pp']:.2f} pp: an MAE is a "
            "mean, and the deviations have a long tail)"
        )
        + ".",
        "- its 80% interval coverage: "
        + (
            "-"
            if coverage is None
            else f"{coverage:.2f} (target {low:g}-{high:g}: "
            f"{'met' if low <= coverage <= high else 'not met'})"
        )
        + ".",
        f"- its MAE {t['cloudformer_mae']:.2f} pp against {TARGET_MAE_PP:g} pp: {below}.",
        f"- placement MAE / cloudformer's monitoring MAE: {placement}.",
    ]
    if t["best_placement_model"] not in (None, "placement"):
        best = _ratio(t["best_placement_over_cloudformer"], PLACEMENT_MARGIN)
        lines.append(f"- best placement-task model ({t['best_placement_model']}) / cloudformer: {best}.")
    return lines


def references_markdown(report: dict[str, Any]) -> list[str]:
    """The references every figure of the report is set beside, measured on the same folds."""
    lines: list[str] = []
    reference = report.get("constant_reference")
    if reference:
        lines.append(
            f"- Constant: always answering the training runs' mean P scores {reference['mean']:.2f} +- "
            f"{reference['std']:.2f} pp; the labels' noise floor is quoted above."
        )
    heuristic = report.get("utilisation_reference")
    if heuristic:
        lines.append(
            f"- Utilisation heuristic (P = min(1, {heuristic['cores']:g} cores / summed solo CPU demand), no "
            f"learning, what load-aware scorers do): {heuristic['mean']:.2f} +- {heuristic['std']:.2f} pp."
        )
    fair = report.get("fair_share_reference")
    if fair:
        lines.append(
            f"- Fair-share heuristic (the same demands shared max-min fairly, as the kernel shares CPU "
            f"between equal-weight cgroups: P = allocation / demand, no learning): {fair['mean']:.2f} +- "
            f"{fair['std']:.2f} pp."
        )
    solo = report.get("solo_relative_reference")
    if solo:
        lines.append(
            f"- Solo-relative heuristic (monitoring: P = min(1, the target's mean CPU use in the co-run / "
            f"its mean CPU use in its own solo profile), no learning): {solo['mean']:.2f} +- "
            f"{solo['std']:.2f} pp."
        )
    repeats = report.get("repeat_reference")
    if repeats:
        lines.append(
            f"- Repeated co-runs (the labels' own spread under interference: {repeats['runs']} measurements "
            f"of {repeats['configurations']} co-runs the lab measured more than once, the same target "
            "configuration, load and neighbours, each against the median of the other measurements, as the "
            f"noise floor reads solos): median {repeats['median']:.2f} pp, mean {repeats['mean']:.2f} pp, "
            f"p90 {repeats['p90']:.2f} pp. Two measurements differ by more than either does from the "
            "co-run's expected P, so the mean bounds from above what a predictor of every co-run's expected "
            "P would score."
        )
    rates = report.get("work_rate_reference")
    if rates:
        lines.append(work_rates_markdown(rates))
    if not lines:
        return []
    heading = "References on the same folds (no learning; the heuristics read each tenant's solo CPU demand):"
    return ["", heading, "", *lines]


def work_rates_markdown(rates: dict[str, Any]) -> str:
    """The work-rate reference as one line: the CPU ratio's and each program's closest rate's MAE, and the
    programs another rate serves much better."""
    closer = [
        f"{name} ({found['closest']} {found['closest_mae']:.1f} against {found['cpu_mae']:.1f})"
        for name, found in rates["programs"].items()
        if found["cpu_mae"] - found["closest_mae"] >= CLOSER_RATE_PP
    ]
    return (
        f"- Work rates (which collected rate of the target, over its solo profile, follows P program by "
        f"program; it reads every program's labels, choosing nothing): on {rates['runs']} co-runs the CPU "
        f"ratio (the solo-relative heuristic) scores {rates['cpu_mae']:.2f} pp, each program read through "
        f"the rate closest to its own labels {rates['closest_mae']:.2f} pp: what a model that knew which "
        f"rate is an unseen program's progress could approach with this telemetry. Another rate is closer by "
        f"{CLOSER_RATE_PP:g} pp or more for {len(closer)} of {len(rates['programs'])} programs"
        + (f": {'; '.join(closer)}." if closer else ".")
    )


def curves_markdown(report: dict[str, Any]) -> list[str]:
    curves = report.get("learning_curves")
    if not curves or not curves["models"]:
        return []
    lines = [
        "",
        f"## Learning curves (held-out programs fixed per fold; {', '.join(curves['folds'])})",
        "",
        "MAE pp mean +- std. Training applications: how many of the split's training applications are kept"
        " (all their runs). Run fraction: every training application, with that share of its runs.",
    ]
    for axis, title in (("applications", "training applications"), ("run_fraction", "run fraction")):
        sizes = sorted({k for m in curves["models"].values() for k in m[axis]}, key=float)
        if len(sizes) < 2:  # the evaluation's own point alone (no smaller training asked for): no curve
            continue
        lines += ["", f"| model \\ {title} | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
        for name, m in curves["models"].items():
            cells = [f"{m[axis][k][0]:.2f} +- {m[axis][k][1]:.2f}" if k in m[axis] else "-" for k in sizes]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + programs_seen_markdown(curves)


LARGEST_GAPS = 8  # programs named per model under the programs-seen table


def programs_seen_markdown(curves: dict[str, Any]) -> list[str]:
    """The paired unseen / seen figures of each model that has them, as a table."""
    rows = {name: m["programs_seen"] for name, m in curves["models"].items() if "programs_seen" in m}
    if not rows:
        return []
    lines = [
        "",
        "Programs seen: the same held-out runs (half of each held-out program's configurations, every "
        "measurement of one together) answered by the fold's training, and by it with the other half of "
        "those configurations and every run beside a held-out program added. Seen is what the inputs say "
        "of a program known; unseen minus seen is the error a program's own behaviour makes, which only more "
        "kinds of program, or inputs that carry between programs, can close.",
        "",
        "| model | unseen | seen | unseen - seen | folds |",
        "|---|---|---|---|---|",
    ]
    for name, found in rows.items():
        cells = [f"{found[k][0]:.2f} +- {found[k][1]:.2f}" for k in ("unseen", "seen", "unseen_minus_seen")]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {found['folds']} |")
    for name, found in rows.items():
        programs = found.get("by_application", {})
        gaps = sorted(programs, key=lambda p: programs[p]["seen"] - programs[p]["unseen"])
        largest = [
            f"{p} {programs[p]['unseen']:.2f} to {programs[p]['seen']:.2f}"
            for p in gaps[:LARGEST_GAPS]
            if programs[p]["unseen"] > programs[p]["seen"]
        ]
        if largest:
            lines += ["", f"{name}, the programs it gains most on once seen (MAE pp): {'; '.join(largest)}."]
    return lines


def plot_curves(curves: dict[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (axis, label) in zip(
        axes, (("applications", "training applications"), ("run_fraction", "share of runs kept")), strict=True
    ):
        for name, m in curves["models"].items():
            sizes = sorted(m[axis], key=float)
            mean = np.array([m[axis][k][0] for k in sizes])
            std = np.array([m[axis][k][1] for k in sizes])
            x = np.array([float(k) for k in sizes])
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=name)
        ax.set_xlabel(label)
    axes[0].set_ylabel("MAE (pp of P), held-out applications")
    axes[0].legend(fontsize=8)
    fig.suptitle("Learning curves")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
