from __future__ import annotations

from pathlib import Path

import cotenant.datasets.lab as lab_package
import pytest
import yaml
from cotenant.datasets.lab.plan import PlanError, PlanPart, RunSpec, expand_plan, load_plan, summarise
from cotenant.datasets.lab.schedules import ScheduleSpec, schedule_levels

PLANS = Path(lab_package.__file__).parent / "plans"


def write_plan(tmp_path: Path, **overrides: object) -> Path:
    plan: dict[str, object] = {
        "name": "t",
        "seed": 3,
        "duration_s": 4,
        "solo_repeats": 3,
        "schedules": {"ramp": {"kind": "monotonic", "low": 1, "high": 4, "phases": 2}},
        "targets": [
            {"workload": "sysbench_cpu", "levels": [1, 2]},
            {"workload": "redis", "schedules": ["ramp"]},
        ],
        "neighbours": {
            "a": {"workload": "pressure_cpu", "level": 1},
            "b": {"workload": "pressure_cache", "level": 1},
            "c": {"workload": "pressure_io", "level": 1},
        },
        "coruns": {"count": 12, "sizes": [1, 2, 3]},
    }
    plan.update(overrides)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_expansion_counts_order_and_determinism(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path))
    runs = expand_plan(plan)
    assert runs == expand_plan(plan)
    kinds = [run.kind for run in runs]
    assert kinds.count("corun") == 12 and kinds.count("solo") == 9 and kinds.count("neighbour_solo") == 3
    assert [run.run_id for run in runs] == [f"r{i:04d}" for i in range(1, len(runs) + 1)]
    assert sorted(len(run.neighbours) for run in runs if run.kind == "corun") == [1] * 4 + [2] * 4 + [3] * 4
    for run in runs:
        assert len({n.config_key for n in run.neighbours}) == len(run.neighbours)  # no neighbour twice


def test_solo_references_are_spread_through_the_plan(tmp_path: Path) -> None:
    runs = expand_plan(load_plan(write_plan(tmp_path)))
    for key in {run.target.config_key for run in runs if run.kind == "solo"}:
        positions = [i for i, run in enumerate(runs) if run.kind == "solo" and run.target.config_key == key]
        assert len(positions) == 3
        assert positions[-1] - positions[0] >= len(runs) // 2  # first and last repeat far apart


def test_dynamic_config_key_carries_the_replayed_levels(tmp_path: Path) -> None:
    runs = expand_plan(load_plan(write_plan(tmp_path)))
    redis = {run.target for run in runs if run.target.workload == "redis"}
    assert len(redis) == 1
    (config,) = redis
    assert config.phase_levels == (1, 4) and config.scenario == "dynamic"
    assert "ramp=1-4" in config.config_key


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"targets": [{"workload": "nope", "levels": [1]}]},
            r"targets\[0\]\.workload: unknown workload .nope.",
        ),
        ({"targets": [{"workload": "redis", "schedules": ["missing"]}]}, "'missing' is not defined"),
        ({"targets": [{"workload": "redis"}]}, "levels or schedules"),
        ({"coruns": {"count": 3, "sizes": [9]}}, "between 1 and 8"),
        ({"coruns": {"count": 3, "sizes": [0]}}, "between 1 and 8"),
        ({"duration_s": "long"}, "duration_s"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_plans_name_the_field(tmp_path: Path, override: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message) as error:
        load_plan(write_plan(tmp_path, **override))
    assert "plan.yaml" in str(error.value)


def test_schedules_are_deterministic_and_shaped() -> None:
    assert schedule_levels(ScheduleSpec(kind="monotonic", low=1, high=7, phases=4), 0) == [1, 3, 5, 7]
    assert schedule_levels(ScheduleSpec(kind="periodic", low=1, high=3, phases=4), 0) == [1, 2, 3, 2]
    random_spec = ScheduleSpec(kind="random", low=1, high=50, phases=8, seed=1)
    assert schedule_levels(random_spec, 9) == schedule_levels(random_spec, 9)
    assert schedule_levels(random_spec, 9) != schedule_levels(random_spec, 10)
    assert all(1 <= level <= 50 for level in schedule_levels(random_spec, 9))


# Plans of the closed-loop A/B test (`cotenant lab abtest`) are another kind: test_abtest_policies.py.
AB_TESTS = ("abtest.yaml",)


@pytest.mark.parametrize(
    "name", sorted(path.name for path in PLANS.glob("*.yaml") if path.name not in AB_TESTS)
)
def test_shipped_plans_are_valid(name: str) -> None:
    summary = summarise(load_plan(PLANS / name))
    kinds = summary.solo + summary.corun + summary.neighbour_solo + summary.probe + summary.pressure
    assert summary.runs == kinds


def test_bundled_plan_meets_the_dataset_requirements() -> None:
    summary = summarise(load_plan(PLANS / "bundled.yaml"))
    assert summary.applications >= 8 and summary.corun >= 300 and summary.dynamic_configs > 0
    assert summary.estimated_s < 75 * 60


def test_plan_info_command_prints_counts_and_rejects_bad_plans(tmp_path: Path) -> None:
    from cotenant.datasets.lab.cli import app
    from typer.testing import CliRunner

    runner = CliRunner()
    shown = runner.invoke(app, ["plan-info", str(PLANS / "smoke.yaml")])
    assert shown.exit_code == 0 and "corun" in shown.output and "estimated_s" in shown.output
    bad = runner.invoke(app, ["plan-info", str(write_plan(tmp_path, duration_s=-1))])
    assert bad.exit_code == 2 and "duration_s" in bad.output


def test_probes_cover_each_application_and_each_neighbour(tmp_path: Path) -> None:
    from cotenant.datasets.lab.probes import default_aggressors, default_victims

    plan = load_plan(write_plan(tmp_path, probes={}, dynamic_duration_s=8))
    runs = expand_plan(plan)
    probes = [run for run in runs if run.kind == "probe"]
    pressure = [run for run in runs if run.kind == "pressure"]
    levels = sum(len(spec.levels) for spec in default_aggressors().values())
    # One probe config per application (sysbench_cpu's first static level; redis has only its schedule).
    assert {run.target.config_key for run in probes} == {
        "sysbench_cpu/level=1/cpus=1/mem=1024",
        "redis/ramp=1-4/cpus=1/mem=1024",
    }
    assert len(probes) == 2 * levels
    assert all(
        len(run.neighbours) == 1 and run.neighbours[0].workload.startswith("pressure_") for run in probes
    )
    # Victims measure the 3 neighbours and the 2 applications' probe configs; a victim never measures itself.
    victims = {run.target.workload for run in pressure}
    assert victims == {spec.workload for spec in default_victims().values()}
    pressed = {run.neighbours[0].config_key for run in pressure}
    assert "redis/ramp=1-4/cpus=1/mem=1024" in pressed and "sysbench_cpu/level=1/cpus=1/mem=1024" in pressed
    # pressure_cpu, _cache and _io are victims and also neighbours a, b, c: never beside themselves.
    assert len(pressure) == len(victims) * 5 - 3
    # Victims get solo references like targets (their P is the neighbour's pressure).
    solo = {run.target.config_key for run in runs if run.kind == "solo"}
    assert {run.target.config_key for run in pressure} <= solo
    # Durations: dynamic configs run dynamic_duration_s, split over their phases.
    redis = next(run.target for run in probes if run.target.workload == "redis")
    assert redis.duration_s == 8 and redis.phase_s == 4
    assert summarise(plan).probe == len(probes) and summarise(plan).pressure == len(pressure)


def test_a_plan_may_measure_only_its_applications_pressure(tmp_path: Path) -> None:
    """A campaign pooled after the one that measured its neighbours' pressure measures its applications'."""
    plan = load_plan(write_plan(tmp_path, probes={"pressure_of_neighbours": False}))
    runs = expand_plan(plan)
    pressure = [run for run in runs if run.kind == "pressure"]
    victims = {run.target.config_key for run in pressure}
    assert {run.neighbours[0].workload for run in pressure} == {"sysbench_cpu", "redis"}
    assert len(pressure) == 2 * len(victims) == 2 * 4
    # the sensitivity probes and the victims' solo references are as before
    assert [run for run in runs if run.kind == "probe"]
    assert victims <= {run.target.config_key for run in runs if run.kind == "solo"}


def test_a_plan_without_probes_has_none(tmp_path: Path) -> None:
    runs = expand_plan(load_plan(write_plan(tmp_path)))
    assert not [run for run in runs if run.kind in ("probe", "pressure")]


def test_parts_share_out_coruns_and_probes_and_each_holds_every_solo(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, probes={}, coruns={"count": 27, "sizes": [1, 2, 3]}))
    whole = expand_plan(plan)
    parts = [expand_plan(plan.model_copy(update={"part": PlanPart(index=i, count=3)})) for i in (1, 2, 3)]
    by_id = {run.run_id: run for run in whole}
    shared = {"corun", "probe", "pressure"}
    for part in parts:
        # Each part is the whole plan's runs (same ids, same order), with every solo reference and profile.
        assert [run.run_id for run in part] == sorted(run.run_id for run in part)
        assert all(by_id[run.run_id] == run for run in part)
        assert [r for r in whole if r.kind not in shared] == [r for r in part if r.kind not in shared]
        # Co-runs go by whole rounds over the targets: every target has its share in every part.
        targets = [run.target.config_key for run in part if run.kind == "corun"]
        assert {targets.count(key) for key in set(targets)} == {27 // 3 // 3}
        assert len(set(targets)) == 3
    # The shared kinds are divided: each such run is in exactly one part.
    for kind in shared:
        ids = [run.run_id for part in parts for run in part if run.kind == kind]
        assert sorted(ids) == sorted(run.run_id for run in whole if run.kind == kind)
        assert len(ids) == len(set(ids))
    # All the probes of one application (its sensitivity vector) and of one neighbour (its pressure) are in
    # one part, so each vector is measured on one machine.
    for kind, measured in (("probe", lambda run: run.target), ("pressure", lambda run: run.neighbours[0])):
        homes: dict[str, set[int]] = {}
        for number, part in enumerate(parts):
            for run in part:
                if run.kind == kind:
                    homes.setdefault(measured(run).config_key, set()).add(number)
        assert homes and all(len(found) == 1 for found in homes.values())


def test_parts_by_targets_hold_their_targets_with_every_run_that_labels_them(tmp_path: Path) -> None:
    from cotenant.datasets.lab.probes import default_victims

    plan = load_plan(
        write_plan(tmp_path, probes={}, parts_by="targets", coruns={"count": 27, "sizes": [1, 2, 3]})
    )
    whole = expand_plan(plan)
    parts = [expand_plan(plan.model_copy(update={"part": PlanPart(index=i, count=2)})) for i in (1, 2)]
    by_id = {run.run_id: run for run in whole}
    victims = {spec.workload for spec in default_victims().values()}
    homes: dict[str, set[int]] = {}
    for number, part in enumerate(parts):
        assert all(by_id[run.run_id] == run for run in part)
        labelled = {run.target.config_key for run in part if run.kind in ("corun", "probe")}
        solos = [run.target.config_key for run in part if run.kind == "solo"]
        # Every target co-run or probed here has all its solo references here; victims' solos are in every
        # part (pressure runs are shared out by neighbour and need them).
        assert labelled and all(solos.count(key) == plan.solo_repeats for key in labelled)
        assert {key.split("/")[0] for key in solos} - {key.split("/")[0] for key in labelled} <= victims
        for key in labelled:
            homes.setdefault(key, set()).add(number)
    # Each target lives in one part, and no run is lost or measured twice: a solo is measured once for the
    # whole plan, where parts of the default kind each repeat every one.
    assert len(homes) == 3 and all(len(found) == 1 for found in homes.values())
    ids = [run.run_id for part in parts for run in part if run.kind in ("corun", "probe", "pressure")]
    assert sorted(ids) == sorted(run.run_id for run in whole if run.kind in ("corun", "probe", "pressure"))

    def target_solos(runs: list[RunSpec]) -> list[str]:
        return sorted(r.run_id for r in runs if r.kind == "solo" and r.target.workload not in victims)

    assert target_solos([run for part in parts for run in part]) == target_solos(whole)
    by_rounds = plan.model_copy(update={"parts_by": "rounds", "part": PlanPart(index=1, count=2)})
    assert sum(run.kind == "solo" for run in expand_plan(by_rounds)) > max(
        sum(run.kind == "solo" for run in part) for part in parts
    )


def test_part_syntax_and_bounds() -> None:
    assert PlanPart.parse("2/8") == PlanPart(index=2, count=8) and str(PlanPart.parse(" 2/8")) == "2/8"
    for bad in ("2", "0/8", "9/8", "a/b", "2/"):
        with pytest.raises(ValueError):
            PlanPart.parse(bad)


def test_adjacent_references_put_each_labelled_run_between_solos_of_its_configuration(tmp_path: Path) -> None:
    plan = load_plan(
        write_plan(
            tmp_path,
            probes={},
            coruns={"count": 27, "sizes": [1, 2, 3]},
            adjacent_references={"runs_between": 2, "block_runs": 4},
        )
    )
    whole = expand_plan(plan)
    assert whole == expand_plan(plan)
    assert [run.run_id for run in whole] == [f"r{i:04d}" for i in range(1, len(whole) + 1)]
    position = {run.run_id: index for index, run in enumerate(whole)}
    by_id = {run.run_id: run for run in whole}
    labelled = [run for run in whole if run.kind in ("corun", "probe", "pressure")]
    assert len([run for run in labelled if run.kind == "corun"]) == 27
    for run in labelled:
        # A solo of the same configuration right before and one at most two runs after.
        before, after = run.references
        assert {by_id[ref].kind for ref in run.references} == {"solo"}
        assert {by_id[ref].target for ref in run.references} == {run.target}
        assert position[before] < position[run.run_id] < position[after]
        assert position[after] - position[before] <= 3
    for run in whole:
        if run.kind == "solo":
            # Every solo sits in a block (no configuration is without labelled runs here) and is compared
            # with the solos next to it, never with itself.
            assert 1 <= len(run.references) <= 2 and run.run_id not in run.references
            assert all(
                by_id[ref].kind == "solo" and by_id[ref].target == run.target for ref in run.references
            )
    # A block (from a solo whose references all follow it to one whose references all precede it) holds
    # at most block_runs labelled runs, at most runs_between between two of its solos.
    in_block, since_solo = None, 0
    for run in whole:
        if run.kind == "solo":
            if all(position[ref] > position[run.run_id] for ref in run.references):
                in_block = 0
            elif all(position[ref] < position[run.run_id] for ref in run.references):
                assert in_block is not None and 1 <= in_block <= 4
                in_block = None
            since_solo = 0
        elif in_block is not None:
            in_block, since_solo = in_block + 1, since_solo + 1
            assert since_solo <= 2


def test_adjacent_references_in_parts_keep_each_part_self_contained(tmp_path: Path) -> None:
    plan = load_plan(
        write_plan(tmp_path, probes={}, coruns={"count": 27, "sizes": [1, 2, 3]}, adjacent_references={})
    )
    parts = [expand_plan(plan.model_copy(update={"part": PlanPart(index=i, count=3)})) for i in (1, 2, 3)]
    ids = [run.run_id for part in parts for run in part]
    assert len(ids) == len(set(ids))  # the parts' ids are numbered through: packable side by side
    for part in parts:
        in_part = {run.run_id for run in part}
        assert all(set(run.references) <= in_part for run in part)  # no reference from another part
        targets = [run.target.config_key for run in part if run.kind == "corun"]
        assert {targets.count(key) for key in set(targets)} == {27 // 3 // 3}
    # Asking for a part gives the same runs as that part of the whole sequence.
    assert expand_plan(plan.model_copy(update={"part": PlanPart(index=2, count=3)})) == parts[1]


def test_the_catalogue_plan_runs_every_application() -> None:
    from cotenant.datasets.lab.workloads import WORKLOADS
    from cotenant.datasets.splits import instruments

    plan = load_plan(PLANS / "catalogue.yaml")
    targets = {target.workload for target in plan.targets}
    applications = set(WORKLOADS) - instruments()
    # sysbench_cpu_rate is sysbench_cpu at a fixed rate: the same program, not another application.
    assert applications - {"sysbench_cpu_rate"} <= targets, "add the new workload to plans/catalogue.yaml"
