"""Parsers on outputs captured from the real programs on this machine kind (tests/datasets/lab/captured)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cotenant.datasets.lab.workloads import WORKLOADS, ParseError
from cotenant.datasets.lab.workloads.base import parse_stress_ng
from cotenant.datasets.lab.workloads.fio_randrw import FioRandRW
from cotenant.datasets.lab.workloads.openssl_speed import parse_openssl_speed
from cotenant.datasets.lab.workloads.redis import parse_redis_benchmark
from cotenant.datasets.lab.workloads.sysbench_cpu import parse_sysbench_cpu
from cotenant.datasets.lab.workloads.sysbench_cpu_rate import parse_sysbench_latency
from cotenant.datasets.lab.workloads.sysbench_fileio import parse_sysbench_fileio
from cotenant.datasets.lab.workloads.sysbench_memory import parse_sysbench_memory
from cotenant.datasets.lab.workloads.zstd_bench import parse_zstd_bench

parse_fio_iops = FioRandRW().parse  # read + write IOPS

CAPTURED = Path(__file__).parent / "captured"


def captured(name: str) -> str:
    return (CAPTURED / name).read_text(errors="replace")


@pytest.mark.parametrize(
    ("parser", "file", "expected"),
    [
        (parse_sysbench_cpu, "sysbench_cpu.txt", 3144.57),
        (parse_sysbench_latency, "sysbench_cpu_rate.txt", 0.69),
        (parse_sysbench_memory, "sysbench_memory.txt", 41155.30),
        # reads/s + writes/s; the fsyncs/s (1575.97) are not operations of their own
        (parse_sysbench_fileio, "sysbench_fileio.txt", 23624.58 + 15749.72),
        (parse_redis_benchmark, "redis_benchmark.txt", 92889.8),  # the last overall figure, not the first
        (parse_zstd_bench, "zstd.txt", 281.5),  # compression speed of the final line
        (parse_openssl_speed, "openssl.txt", 5548040.36),
        (parse_openssl_speed, "openssl_multi.txt", 6012420.10),
        (parse_fio_iops, "fio.json", 7159.42029 + 7145.927036),
    ],
)
def test_parser_reads_the_metric(parser, file: str, expected: float) -> None:
    assert parser(captured(file)) == pytest.approx(expected)


def test_stress_ng_parser_picks_the_named_stressor() -> None:
    assert parse_stress_ng(captured("stressng.txt"), "matrix") == pytest.approx(5400.84)
    assert parse_stress_ng(captured("stressng_stream.txt"), "stream") == pytest.approx(0.06)
    assert WORKLOADS["stressng_memcpy"]().parse(captured("stressng_memcpy.txt")) == pytest.approx(53.61)
    assert WORKLOADS["stressng_msg"]().parse(captured("stressng_msg.txt")) == pytest.approx(1011050.34)
    assert WORKLOADS["stressng_eventfd"]().parse(captured("stressng_eventfd.txt")) == pytest.approx(18258.77)
    with pytest.raises(ParseError, match="cpu bogo ops/s"):
        parse_stress_ng(captured("stressng.txt"), "cpu")


@pytest.mark.parametrize(
    "parser",
    [
        parse_sysbench_cpu,
        parse_sysbench_latency,
        parse_sysbench_memory,
        parse_sysbench_fileio,
        parse_redis_benchmark,
        parse_zstd_bench,
        parse_openssl_speed,
        parse_fio_iops,
    ],
)
def test_parsers_reject_output_without_a_metric(parser) -> None:
    with pytest.raises(ParseError):
        parser("command not found\n")


@pytest.mark.parametrize(
    ("name", "file", "expected"),
    [
        # bytes/s read + written (reads alone would be half of it; the IOPS 6720.76)
        ("fio_seqrw", "fio_seqrw.json", 880903421),
        # commits/s: the writes' IOPS, not their bytes/s (46616055)
        ("fio_wal", "fio_wal.json", 5690.436521),
    ],
)
def test_fio_workloads_read_their_own_total(name: str, file: str, expected: float) -> None:
    workload = WORKLOADS[name]()
    assert workload.parse(captured(file)) == pytest.approx(expected)
    with pytest.raises(ParseError, match="no fio JSON"):
        workload.parse("fio: failed to open the file\n")
    with pytest.raises(ParseError, match=r"read/write\."):
        workload.parse('{"jobs": [{"read": {}}]}')


def test_fio_parser_skips_warnings_before_the_json() -> None:
    text = "fio: file hash not empty on exit\n" + captured("fio.json")
    assert parse_fio_iops(text) == pytest.approx(7159.42029 + 7145.927036)


def test_catalogue_has_twenty_applications_in_seven_classes_and_the_pressure_kinds() -> None:
    from cotenant.datasets.lab.workloads.base import CATEGORIES

    applications = {name: w for name, w in WORKLOADS.items() if w.category != "synthetic"}
    # sysbench_cpu_rate is sysbench_cpu at a fixed rate: the same program, not another application.
    assert len(set(applications) - {"sysbench_cpu_rate"}) >= 20
    assert len({workload.category for workload in applications.values()}) >= 7
    assert {
        "pressure_cpu",
        "pressure_cache",
        "pressure_membw",
        "pressure_vm",
        "pressure_io",
        "pressure_net",
    } <= {name for name, workload in WORKLOADS.items() if workload.category == "synthetic"}
    for name, workload in WORKLOADS.items():
        assert workload.name == name
        assert workload.unit
        assert workload.category in CATEGORIES


def test_commands_are_time_bounded(tmp_path: Path) -> None:
    """Every phase command carries its duration (or is stopped at the deadline by the runner)."""
    from cotenant.datasets.lab.workloads import WorkContext

    context = WorkContext(scratch=tmp_path, role_dir=tmp_path, runtime_dir=tmp_path)
    for name, workload_class in WORKLOADS.items():
        workload = workload_class()
        command = " ".join(workload.phase_command(2, 6, context))
        bounded = workload.stop_at_deadline or any(
            token in command
            for token in (
                "--time=6",
                "--runtime=6",
                "--timeout 6s",
                "-seconds 6",
                "-i3",
                "--seconds 6",
                "-T 6",
                "-d6s",
                "-t 6s",
            )
        )
        assert bounded, f"{name}: {command}"


@pytest.mark.live
@pytest.mark.parametrize("name", ["stressng_msg", "stressng_eventfd"])
def test_ipc_stressors_run_a_phase_and_block_on_every_unit(name: str, tmp_path: Path) -> None:
    """One short phase of the real program: its rate parses, and it switches context thousands of times per
    second of CPU it uses (what sets these programs apart from the compute kernels; getrusage of the reaped
    stress-ng processes). Pinned to one core, where every unit hands the core over: with a free core each,
    the message queue's sender and receiver run side by side and hardly block (stressng_msg: ~200 per
    CPU-second on an idle machine, ~1 000 beside the test suite), which made the figure depend on how busy
    the machine was. The lab gives each one CPU's worth of time (cpus=1: ~3 200 in its profiles)."""
    import resource
    import subprocess

    from cotenant.datasets.lab.workloads import WorkContext

    context = WorkContext(scratch=tmp_path, role_dir=tmp_path, runtime_dir=tmp_path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        ["taskset", "-c", "0", *WORKLOADS[name]().phase_command(1, 2, context)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert WORKLOADS[name]().parse(done.stdout + done.stderr) > 0
    switches = (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw)
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert switches / max(cpu_seconds, 1e-3) > 2_000
