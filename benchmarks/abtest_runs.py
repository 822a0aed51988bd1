"""Several runs of the closed-loop A/B test side by side: does one policy's order hold from run to run?

    python benchmarks/abtest_runs.py reports/abtest var/abtest-2 var/abtest-3

Each argument is the ``--out`` directory of one ``cotenant lab abtest`` run (its ``abtest.json``). One run
measures each final placement a few times on one sitting, so its SLO-miss counts carry the machine's drift
between sittings: a tenant measured at P 0.81 in one run reads 0.79 in the next. This prints, per run, each
policy's SLO misses and worst P, then per policy the median over the runs, and how often cotenant's placements
met the closed loop's bar against each other policy (no more misses; a higher worst P). Where a policy placed
the same tenants on the same hosts in every run (the request-only policies, with the plan's seed), the spread
of its misses is the measurement's alone: the yardstick for reading the others' differences.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from cotenant.datasets.lab.abtest import AbTestPlan, Policy

CANDIDATE: Policy = "cotenant"


def read_run(path: Path) -> dict[str, Any]:
    report = path / "abtest.json" if path.is_dir() else path
    if not report.is_file():
        raise SystemExit(
            f"{report}: no abtest.json (give the --out directory of a `cotenant lab abtest` run)"
        )
    try:
        found: dict[str, Any] = json.loads(report.read_text())
    except json.JSONDecodeError as error:
        raise SystemExit(f"{report}: not JSON ({error})") from error
    missing = [key for key in ("plan", "outcomes", "placements") if key not in found]
    if missing:
        raise SystemExit(f"{report}: not an A/B test report (no {', '.join(missing)})")
    return found


def placement_key(placement: dict[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A placement as comparable data: the tenants per host, in order, and the refused ones."""
    hosts = tuple((host, tuple(names)) for host, names in sorted(placement["hosts"].items()))
    return (*hosts, ("refused", tuple(placement["refused"])))


def summarise(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per policy present in every run: misses and worst P per run, their medians, whether its placement
    was the same in every run, and, for the other policies, how many runs cotenant's misses were no more
    than theirs and its worst P higher."""
    policies = [
        p for p in next(iter(runs.values()))["outcomes"] if all(p in r["outcomes"] for r in runs.values())
    ]
    summary: dict[str, dict[str, Any]] = {}
    for policy in policies:
        misses = [run["outcomes"][policy]["slo_misses"] for run in runs.values()]
        worst = [run["outcomes"][policy]["worst_p"] for run in runs.values()]
        placements = {placement_key(run["placements"][policy]) for run in runs.values()}
        summary[policy] = {
            "misses": misses,
            "median_misses": statistics.median(misses),
            "worst_p": worst,
            "median_worst_p": statistics.median(worst),
            "same_placement": len(placements) == 1,
        }
    if CANDIDATE in summary:
        ours = summary[CANDIDATE]
        for policy, found in summary.items():
            if policy == CANDIDATE:
                continue
            found["cotenant_no_more_misses"] = sum(
                a <= b for a, b in zip(ours["misses"], found["misses"], strict=True)
            )
            found["cotenant_higher_worst_p"] = sum(
                a > b for a, b in zip(ours["worst_p"], found["worst_p"], strict=True)
            )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="abtest --out directories (or their abtest.json)")
    args = parser.parse_args()
    runs = {str(path): read_run(path) for path in args.runs}
    for name, run in runs.items():
        rule = run["plan"].get("extender_rule", AbTestPlan.model_fields["extender_rule"].default)
        cells = ", ".join(
            f"{policy} {o['slo_misses']} misses (worst P {o['worst_p']:.3f})"
            for policy, o in run["outcomes"].items()
        )
        print(f"{name} [extender rule {rule}]: {cells}")
    summary = summarise(runs)
    print(f"\nOver {len(runs)} runs (median; per run in brackets):")
    for policy, found in summary.items():
        same = "same placement every run" if found["same_placement"] else "placements differ between runs"
        line = (
            f"  {policy}: misses {found['median_misses']:g} {found['misses']}, worst P "
            f"{found['median_worst_p']:.3f} [{', '.join(f'{w:.3f}' for w in found['worst_p'])}]; {same}"
        )
        if "cotenant_no_more_misses" in found:
            line += (
                f"; cotenant no more misses in {found['cotenant_no_more_misses']}/{len(runs)}, "
                f"higher worst P in {found['cotenant_higher_worst_p']}/{len(runs)}"
            )
        print(line)


if __name__ == "__main__":
    main()
