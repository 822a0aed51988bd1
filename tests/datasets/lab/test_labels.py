from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cotenant.datasets.lab.labels import label_runs, noise_floor
from cotenant.datasets.lab.records import RunCgroups, RunRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(
    run_id: str,
    kind: str,
    performance: float,
    *,
    key: str = "app/level=1",
    higher: bool = True,
    neighbours: int = 0,
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        kind=kind,
        application=key.split("/")[0],
        config_key=key,
        scenario="static",
        load="level 1",
        schedule=None,
        neighbours=[f"n{i}" for i in range(neighbours)],
        repeat=0,
        started_at=NOW,
        ended_at=NOW,
        cgroups=RunCgroups(target=f"lab/{run_id}/target"),
        performance=performance,
        performance_unit="ops",
        higher_is_better=higher,
    )


def test_corun_label_is_performance_over_median_solo() -> None:
    runs = [
        record("s1", "solo", 100),
        record("s2", "solo", 90),
        record("s3", "solo", 120),
        record("c1", "corun", 50, neighbours=2),
    ]
    table = label_runs(runs)
    corun = table.filter(table["run_id"] == "c1").row(0, named=True)
    assert corun["solo_performance"] == 100
    assert corun["label"] == pytest.approx(0.5)
    assert corun["n_neighbours"] == 2


def test_lower_is_better_inverts_the_ratio_and_labels_are_clipped() -> None:
    runs = [
        record("s1", "solo", 10, higher=False),
        record("s2", "solo", 10, higher=False),
        record("slow", "corun", 40, higher=False),
        record("fast", "corun", 5, higher=False),
    ]
    labels = dict(label_runs(runs).select("run_id", "label").iter_rows())
    assert labels["slow"] == pytest.approx(0.25)
    assert labels["fast"] == 1.0  # faster than alone: clipped to 1


def test_solo_rows_are_leave_one_out_and_give_the_noise_floor() -> None:
    runs = [record("s1", "solo", 100), record("s2", "solo", 80), record("s3", "solo", 100)]
    table = label_runs(runs)
    ratios = dict(table.select("run_id", "ratio").iter_rows())
    assert ratios["s2"] == pytest.approx(0.8)  # against the median of s1 and s3
    assert ratios["s1"] == pytest.approx(100 / 90)
    floor = noise_floor(table)
    assert floor.n_solo_pairs == 3
    assert floor.median_abs_deviation == pytest.approx(1 / 9)
    # the mean keeps the tail the median drops: s2's 0.2 weighs in (an MAE is a mean too)
    assert floor.mean_abs_deviation == pytest.approx((1 / 9 + 0.2 + 1 / 9) / 3)
    assert "median 11.11 pp, p90" in floor.describe() and "mean 14.07 pp" in floor.describe()


def test_unreferenced_coruns_and_neighbour_profiles_are_not_labelled() -> None:
    runs = [
        record("s1", "solo", 100),
        record("c1", "corun", 50, key="other/level=1"),
        record("n1", "neighbour_solo", 5, key="pressure/level=1"),
    ]
    table = label_runs(runs)
    assert table["run_id"].to_list() == []  # a single solo has no other solo to compare with
    assert noise_floor(table).n_solo_pairs == 0


def test_zero_performance_gets_the_smallest_positive_label() -> None:
    table = label_runs([record("s1", "solo", 100), record("s2", "solo", 100), record("c1", "corun", 0.0)])
    label = table.filter(table["run_id"] == "c1")["label"].item()
    assert 0 < label < 0.01


def test_timing_separates_windows_from_overhead_and_skips_session_breaks() -> None:
    from datetime import timedelta

    from cotenant.datasets.lab.timing import lab_timing

    def timed(run_id: str, start_s: float, length_s: float, neighbours: int) -> RunRecord:
        base = record(run_id, "corun" if neighbours else "solo", 1.0, neighbours=neighbours)
        started = NOW + timedelta(seconds=start_s)
        return base.model_copy(
            update={"started_at": started, "ended_at": started + timedelta(seconds=length_s)}
        )

    # r0003 starts 1 s after r0002 ends (a co-run); r0005 comes after an hour's break (not consecutive).
    runs = [
        timed("r0001", 0, 8, 0),
        timed("r0002", 8.2, 8, 0),
        timed("r0003", 17.2, 9, 2),
        timed("r0005", 4000, 8, 0),
    ]
    timing = lab_timing(runs)
    assert timing.runs == 4 and timing.max_window_s == 9
    assert timing.median_gap_solo_s == pytest.approx(0.2)
    assert timing.median_gap_corun_s == pytest.approx(1.0)
    assert timing.wall_per_run_s == pytest.approx((26.2 - 8) / 2)


def test_runs_held_up_far_past_their_configurations_window_are_counted() -> None:
    from datetime import timedelta

    from cotenant.datasets.sources.lab_records import overrun_text, records_frame, window_overruns

    def timed(run_id: str, seconds: float, neighbours: int, key: str = "app/level=1") -> RunRecord:
        made = record(run_id, "corun" if neighbours else "solo", 1.0, key=key, neighbours=neighbours)
        return made.model_copy(update={"ended_at": NOW + timedelta(seconds=seconds)})

    runs = [
        timed("s1", 12.0, 0),
        timed("s2", 12.5, 0),
        timed("s3", 30.0, 0),  # a solo held up for 18 s
        timed("c1", 13.0, 2),
        timed("c2", 14.0, 2),
        timed("c3", 19.0, 2),  # a slow last unit: 1.4 x, not a stall
        timed("d1", 33.0, 1, key="dyn/ramp"),  # another configuration: its own typical window
        timed("d2", 34.0, 1, key="dyn/ramp"),
        timed("d3", 90.0, 1, key="dyn/ramp"),
    ]
    overran = window_overruns(records_frame(runs))
    assert overran["run_id"].to_list() == ["d3", "s3"]
    assert overran.filter(overran["run_id"] == "s3")["ratio"].item() == pytest.approx(30.0 / 12.5)
    text = overrun_text(records_frame(runs))
    assert text.startswith("2 of 9 runs") and "corun 1" in text and "solo 1" in text
    assert overrun_text(records_frame(runs[:2])).startswith("no run")


def test_solo_drift_is_the_latest_solo_against_the_earliest_per_configuration() -> None:
    from datetime import timedelta

    from cotenant.datasets.lab.labels import solo_drift
    from cotenant.datasets.sources.lab_records import records_frame

    def at(found: RunRecord, hours: float) -> RunRecord:
        return found.model_copy(update={"started_at": NOW + timedelta(hours=hours)})

    records = [
        at(record("r1", "solo", 100.0, key="kv/level=8"), 0),
        at(record("r2", "solo", 110.0, key="kv/level=8"), 2),  # the middle one is neither end
        at(record("r3", "solo", 125.0, key="kv/level=8"), 5),
        at(record("r4", "solo", 80.0, key="kv/ramp"), 1),
        at(record("r5", "solo", 72.0, key="kv/ramp"), 4),
        at(record("r6", "solo", 10.0, key="db/level=1", higher=False), 0),  # latency: lower is better
        at(record("r7", "solo", 8.0, key="db/level=1", higher=False), 3),
        at(record("r8", "solo", 50.0, key="one/level=1"), 0),  # a single solo: no drift to read
        at(record("r9", "corun", 5.0, key="kv/level=8", neighbours=1), 6),  # co-runs never count
    ]
    drift = solo_drift(records_frame(records))
    assert set(drift) == {"kv", "db"}
    assert drift["kv"].configurations == 2
    assert drift["kv"].median_change == pytest.approx(((1.25 - 1) + (0.9 - 1)) / 2)
    assert drift["kv"].median_hours_apart == pytest.approx(4.0)
    assert drift["db"].median_change == pytest.approx(10 / 8 - 1)  # faster answers: P above 1


def test_solo_drift_pools_campaigns_without_comparing_across_them() -> None:
    import polars as pl
    from cotenant.datasets.lab.labels import solo_drift
    from cotenant.datasets.sources.lab_records import records_frame

    first = records_frame(
        [record("r1", "solo", 100.0, key="kv/level=8"), record("r2", "solo", 110.0, key="kv/level=8")]
    )
    # The other campaign's machine is twice as fast: across campaigns the "drift" would read +100%.
    second = records_frame(
        [record("r1", "solo", 200.0, key="kv/level=8"), record("r2", "solo", 180.0, key="kv/level=8")]
    )
    pooled = pl.concat([first.with_columns(campaign=pl.lit("a")), second.with_columns(campaign=pl.lit("b"))])
    drift = solo_drift(
        pooled.with_columns(pl.col("started_at") + pl.duration(seconds=pl.int_range(pl.len())))
    )
    assert drift["kv"].configurations == 2
    assert drift["kv"].median_change == pytest.approx(((1.1 - 1) + (0.9 - 1)) / 2)


def test_runs_naming_references_are_labelled_against_those_solos_only() -> None:
    def referring(run_id: str, kind: str, performance: float, references: list[str]) -> RunRecord:
        return record(run_id, kind, performance).model_copy(update={"references": references})

    runs = [
        referring("s1", "solo", 100, ["s2"]),
        referring("c1", "corun", 45, ["s1", "s2"]),
        referring("s2", "solo", 80, ["s1", "s3"]),
        referring("c2", "corun", 60, ["s2", "s3"]),
        referring("s3", "solo", 120, ["s2"]),
        # Its references never finished: labelled against every solo of its configuration instead.
        referring("c3", "corun", 50, ["s9", "s10"]),
    ]
    table = label_runs(runs)
    rows = {row["run_id"]: row for row in table.iter_rows(named=True)}
    assert rows["c1"]["solo_performance"] == pytest.approx(90) and rows["c1"]["n_solo_references"] == 2
    assert rows["c2"]["label"] == pytest.approx(0.6)
    assert rows["c3"]["solo_performance"] == 100 and rows["c3"]["n_solo_references"] == 3
    # Solos are compared with the solos next to them: the noise floor measured the way labels are made.
    assert rows["s1"]["ratio"] == pytest.approx(100 / 80)
    assert rows["s2"]["ratio"] == pytest.approx(80 / 110)
    assert rows["s3"]["ratio"] == pytest.approx(120 / 80)


def test_named_references_can_be_ignored_to_compare_with_spread_ones() -> None:
    runs = [
        record("s1", "solo", 100).model_copy(update={"references": ["s2"]}),
        record("s2", "solo", 80).model_copy(update={"references": ["s1"]}),
        record("s3", "solo", 120),
        record("c1", "corun", 50).model_copy(update={"references": ["s1", "s2"]}),
    ]
    spread = dict(label_runs(runs, adjacent=False).select("run_id", "solo_performance").iter_rows())
    assert spread == {"s1": 100.0, "s2": 110.0, "s3": 90.0, "c1": 100.0}


def test_a_canary_adjusts_performance_to_the_machines_speed_before_labelling() -> None:
    def timed(run_id: str, kind: str, performance: float, speed: float, higher: bool = True) -> RunRecord:
        return record(run_id, kind, performance, higher=higher).model_copy(
            update={"speed_before": {"cpu": speed * 0.9}, "speed_after": {"cpu": speed * 1.1}}
        )

    # The machine ran 20% faster during s2 and c1: adjusted, the solos agree and c1 is 0.5 of them.
    runs = [timed("s1", "solo", 100, 1.0), timed("s2", "solo", 120, 1.2), timed("c1", "corun", 60, 1.2)]
    plain = {row["run_id"]: row for row in label_runs(runs).iter_rows(named=True)}
    adjusted = {row["run_id"]: row for row in label_runs(runs, canary="cpu").iter_rows(named=True)}
    assert plain["s1"]["ratio"] == pytest.approx(100 / 120)
    assert adjusted["s1"]["ratio"] == pytest.approx(1.0) and adjusted["s2"]["ratio"] == pytest.approx(1.0)
    assert adjusted["c1"]["label"] == pytest.approx(0.5)
    # A latency shrinks on a faster machine: multiplied by the speed, not divided.
    latencies = [timed("s1", "solo", 10, 1.0, higher=False), timed("s2", "solo", 10 / 1.2, 1.2, higher=False)]
    assert label_runs(latencies, canary="cpu")["ratio"].to_list() == pytest.approx([1.0, 1.0])
    # Runs without that canary are left out rather than mixed in unadjusted.
    assert label_runs([*runs, record("s3", "solo", 90)], canary="cpu").height == 3
    assert label_runs(runs, canary="memory").is_empty()


def test_the_noise_watch_follows_each_new_solo_against_the_earlier_ones_of_its_configuration() -> None:
    """Each solo against the median of the earlier solos of its configuration, the median of the last few:
    a steady machine stays low, one that starts to stutter passes the limit once a full window of its solos
    says so, and co-runs or a configuration's first solo add nothing."""
    from cotenant.datasets.lab.labels import NoiseWatch

    watch = NoiseWatch(limit_pp=5.0, window=4)
    assert watch.describe() == "solo noise: not yet measured"
    steady = [100, 101, 99, 100, 102, 100]
    for i, value in enumerate(steady):
        watch.add(record(f"s{i}", "solo", value))
        watch.add(record(f"c{i}", "corun", 40.0))  # co-runs are not the machine's noise
        watch.add(record(f"l{i}", "solo", 10.0 + i % 2 * 0.1, key="lat/level=1", higher=False))
    assert watch.median_pp is not None and watch.median_pp < 2.0 and not watch.exceeded
    stuttering = NoiseWatch(limit_pp=5.0, window=4)
    for i, value in enumerate([100, 70, 130, 75]):
        stuttering.add(record(f"s{i}", "solo", value))
        assert not stuttering.exceeded  # three deviations: not yet a full window
    stuttering.add(record("s4", "solo", 125))
    assert stuttering.exceeded and stuttering.median_pp is not None and stuttering.median_pp > 20
    assert "median of the last 4 solos" in stuttering.describe()
    assert not NoiseWatch(window=4).exceeded  # no limit: it only reports
    # a resumed campaign: the journal's solos stay references, the window is this sitting's alone
    stuttering.new_sitting()
    assert not stuttering.exceeded and stuttering.median_pp is None
    stuttering.add(record("s5", "solo", 100))
    assert stuttering.median_pp == pytest.approx(0.0) and not stuttering.exceeded  # against 100's median
