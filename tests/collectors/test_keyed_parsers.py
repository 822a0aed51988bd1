"""The pre-built parsers (keyed files, PSI), the parse cache of unchanged files, and derive plans.

The golden tests cover every source end to end; these pin the edge cases the fast paths must keep.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from cotenant.collectors.base import KernelFiles, MetricGroup, counter, gauge, parse_flat_keyed
from cotenant.collectors.cgroup_v1_cpu import parse_cpuacct_usage_all
from cotenant.collectors.derive import DerivePlan, derive
from cotenant.collectors.keyed import keyed_parser, pressure_parser
from cotenant.collectors.task_sched import P, parse_sched

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = {"usage_usec": ("cpu_usage_seconds_total", 1e-6), "limit": ("limit_bytes", 1.0)}


def test_keyed_parser_scales_known_keys_and_leaves_unlimited_out() -> None:
    parse = keyed_parser(NAMES)
    assert parse("usage_usec 2500000\nlimit 4096\nother 7\n") == {
        "cpu_usage_seconds_total": pytest.approx(2.5),
        "limit_bytes": 4096.0,
    }
    assert parse("usage_usec 1\nlimit max\n") == {"cpu_usage_seconds_total": pytest.approx(1e-6)}
    assert parse("limit 9223372036854771712\n") == {}, "the v1 'unlimited' sentinel is null, not 8 EiB"


@pytest.mark.parametrize(
    "text",
    ["usage_usec 10\nnot a two field line\nlimit 5\n", "usage_usec 10\nlimit 5", "\nusage_usec 3\n\n"],
)
def test_keyed_parser_odd_lines_agree_with_parse_flat_keyed(text: str) -> None:
    expected = {NAMES[k][0]: v * NAMES[k][1] for k, v in parse_flat_keyed(text).items() if k in NAMES}
    assert keyed_parser(NAMES)(text) == pytest.approx(expected)


def test_pressure_parser_names_ratios_and_seconds() -> None:
    text = (
        "some avg10=1.50 avg60=0.25 avg300=0.00 total=2000000\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"
    )
    values = pressure_parser("cgroup_", "memory")(text)
    assert values["cgroup_memory_pressure_some_avg10_ratio"] == pytest.approx(0.015)
    assert values["cgroup_memory_pressure_some_stall_seconds_total"] == pytest.approx(2.0)
    assert values["cgroup_memory_pressure_full_stall_seconds_total"] == pytest.approx(7e-6)
    assert len(values) == 8
    cpu_only_some = pressure_parser("host_", "cpu")("some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n")
    assert set(cpu_only_some) == {f"host_cpu_pressure_some_{f}" for f in ("avg10_ratio", "avg60_ratio",
                                  "avg300_ratio", "stall_seconds_total")}  # fmt: skip
    with pytest.raises(ValueError, match="gpu"):
        pressure_parser("host_", "gpu")


def test_unchanged_text_is_parsed_once(tmp_path: Path) -> None:
    path = tmp_path / "cgroup.events"
    path.write_text("populated 1\nfrozen 0\n")
    calls: list[str] = []

    def parse(text: str) -> dict[str, float]:
        calls.append(text)
        return {"populated": float(text.split()[1])}

    files = KernelFiles()
    assert files.read_parsed(str(path), parse) == {"populated": 1.0}
    assert files.read_parsed(str(path), parse) == {"populated": 1.0}
    assert len(calls) == 1
    with open(path, "r+") as handle:  # rewritten in place, as the kernel regenerates the content
        handle.write("populated 0\nfrozen 0\n")
    assert files.read_parsed(str(path), parse) == {"populated": 0.0} and len(calls) == 2
    files.forget(str(tmp_path))
    assert files.read_parsed(str(path), parse) == {"populated": 0.0} and len(calls) == 3
    assert files.read_parsed(str(tmp_path / "absent"), parse) is None


def test_cpuacct_user_and_system_are_the_sums_the_kernel_reports() -> None:
    """usage_user / usage_sys are no longer read: their values come from usage_all's per-CPU columns."""
    cgroup = FIXTURES / "hybrid" / "cgroup" / "cpuacct" / "lab" / "a"
    values = parse_cpuacct_usage_all((cgroup / "cpuacct.usage_all").read_text())
    user = float((cgroup / "cpuacct.usage_user").read_text()) * 1e-9
    system = float((cgroup / "cpuacct.usage_sys").read_text()) * 1e-9
    assert values["cgroup_v1_cpuacct_user_seconds_total"] == pytest.approx(user, rel=1e-12)
    assert values["cgroup_v1_cpuacct_system_seconds_total"] == pytest.approx(system, rel=1e-12)
    assert values["cgroup_v1_cpuacct_cpu1_user_seconds_total"] == pytest.approx(0.879837863)
    assert parse_cpuacct_usage_all("cpu user system\n") == {}, "no CPUs listed: no sums either"


def test_sched_header_and_unknown_keys_are_skipped() -> None:
    text = (
        "stress-ng (4242, #threads: 1)\n-------------------------\n"
        "se.sum_exec_runtime                          :          1500.000000\n"
        "nr_switches                                  :                   12\n"
        "se.avg.util_avg                              :                  512\n"
        "policy                                       :                    0\n"
    )
    counters, gauges = parse_sched(text)
    assert gauges == {P + "util_avg": pytest.approx(0.5)}
    assert counters and all(name.startswith(P) for name in counters)


def test_derive_plan_gives_what_the_specs_give() -> None:
    specs = {
        s.name: s
        for s in (
            counter("a_seconds_total", "seconds", "t", MetricGroup.CPU, "a"),
            counter("b_total", "events", "t", MetricGroup.CPU, "b"),
            gauge("c_bytes", "bytes", "t", MetricGroup.MEMORY, "c"),
            gauge("d_bytes", "bytes", "t", MetricGroup.MEMORY, "d"),
        )
    }
    previous = {"a_seconds_total": 10.0, "b_total": 5.0}
    current = {"a_seconds_total": 12.0, "b_total": 1.0, "c_bytes": math.inf, "d_bytes": 3.0, "x": 1.0}
    planned = derive(previous, current, 2.0, DerivePlan.of(specs))
    assert planned == derive(previous, current, 2.0, specs)
    assert planned == {"a_seconds_per_second": 1.0, "b_per_second": None, "d_bytes": 3.0}
    assert derive(previous, {"a_seconds_total": math.nan}, 1.0, DerivePlan.of(specs)) == {}
