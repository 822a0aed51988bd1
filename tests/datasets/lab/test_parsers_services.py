"""The server workloads nginx_wrk and memcached: parsers on captured real output, phase commands, and one live
run of each (server + a 3 s phase in a real cgroup, as the runner does)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import cotenant.datasets.lab.workloads.nginx_wrk as nginx_module
import cotenant.datasets.lab.workloads.ports as ports_module
import pytest
from cotenant.datasets.lab.cgroups import Cgroup, detect_hierarchy, kill_tree
from cotenant.datasets.lab.plan import RoleConfig
from cotenant.datasets.lab.runner import Role
from cotenant.datasets.lab.workloads.base import CATEGORIES, WORKLOADS, ParseError, WorkContext, Workload
from cotenant.datasets.lab.workloads.memcached import CLIENT_CPU, Memcached, parse_memaslap
from cotenant.datasets.lab.workloads.nginx_wrk import NginxWrk, parse_wrk
from cotenant.datasets.lab.workloads.ports import reserve_port

CAPTURED = Path(__file__).parent / "captured"


def captured(name: str) -> str:
    return (CAPTURED / name).read_text(errors="replace")


@pytest.mark.parametrize(
    ("parser", "file", "expected"),
    [
        (parse_wrk, "wrk.txt", 38759.48),
        (parse_memaslap, "memcached_memaslap.txt", 62428.0),
    ],
)
def test_parser_reads_the_metric(parser, file: str, expected: float) -> None:
    assert parser(captured(file)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("parser", "file"),
    [
        (parse_wrk, "wrk_refused.txt"),  # no server on the port
        (parse_wrk, "wrk_404.txt"),  # a rate, but of error pages
        (parse_memaslap, "memcached_memaslap_refused.txt"),  # the header only: no server on the port
    ],
)
def test_parser_rejects_output_without_a_valid_metric(parser, file: str) -> None:
    with pytest.raises(ParseError):
        parser(captured(file))


@pytest.mark.parametrize("parser", [parse_wrk, parse_memaslap])
def test_parser_rejects_empty_output(parser) -> None:
    with pytest.raises(ParseError):
        parser("")


@pytest.mark.parametrize("workload", [NginxWrk, Memcached])
def test_registered_with_metadata(workload: type[Workload]) -> None:
    assert WORKLOADS[workload.name] is workload
    assert workload.category in CATEGORIES and workload.unit and workload.description
    assert workload.higher_is_better


def context(tmp_path: Path) -> WorkContext:
    ctx = WorkContext(scratch=tmp_path / "scratch", role_dir=tmp_path / "role", runtime_dir=tmp_path / "run")
    for directory in (ctx.scratch, ctx.role_dir, ctx.runtime_dir):
        directory.mkdir()
    return ctx


@pytest.mark.parametrize("workload", [NginxWrk, Memcached])
def test_phase_command_is_time_bounded_on_the_service_port(workload: type[Workload], tmp_path: Path) -> None:
    ctx = context(tmp_path)
    service = workload().service_command(ctx)
    assert service is not None
    server = {"nginx_wrk": "nginx", "memcached": "memcached"}[workload.name]
    port = (ctx.runtime_dir / f"{server}.port").read_text().strip()  # drawn at service start
    command = workload().phase_command(3, 17, ctx)
    # The tools end by themselves: the duration is on the command line, no SIGINT at the deadline.
    assert not workload.stop_at_deadline
    assert any(arg in {"-d17s", "17s"} for arg in command)
    assert any(port in arg for arg in command)


def test_nginx_config_keeps_every_path_in_the_role(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    workload = NginxWrk()
    workload.prepare(ctx.scratch)
    command = workload.service_command(ctx)
    assert command is not None and "-e" in command and command[command.index("-e") + 1] == "stderr"
    text = (ctx.role_dir / "nginx.conf").read_text()
    conf = "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))
    assert "daemon off;" in conf and "access_log off;" in conf
    assert f"127.0.0.1:{reserve_port(ctx, 'nginx')}" in conf
    assert "/var/" not in conf and "/run/" not in conf
    for line in conf.splitlines():
        if "_temp_path " in line or line.startswith("pid "):
            assert str(ctx.role_dir) in line, line
    assert (ctx.scratch / "nginx_wrk" / nginx_module.STATIC_FILE).stat().st_size == 4096


def test_roles_of_a_run_get_distinct_ports(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = context(tmp_path / "a"), context(tmp_path / "b")
    port = reserve_port(first, "nginx")
    assert reserve_port(first, "nginx") == port  # stable for the role's phases
    # Roles are set up in turn: the first role's server listens before the second role draws its port.
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert reserve_port(second, "nginx") != port
        assert ports_module.port_accepts(port)


@pytest.mark.live
@pytest.mark.parametrize("workload", [NginxWrk.name, Memcached.name])
def test_server_and_one_phase_as_the_runner_runs_them(workload: str, tmp_path: Path) -> None:
    hierarchy = detect_hierarchy()
    # Not under the lab prefix: a lab starting meanwhile must not mistake it for a leftover.
    group = f"cotenant-labtest-{os.getpid()}-{workload}"
    config = RoleConfig(workload, (2,), None, cpus=1.0, memory_mib=512, duration_s=3)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    role = Role(
        "target",
        config,
        WORKLOADS[workload](),
        Cgroup(hierarchy, f"{group}/r0001/target"),
        scratch,
        tmp_path / "logs",
    )
    role.log_dir.mkdir()
    try:
        role.workload.prepare(scratch)
        role.setup()
        (rate,) = role.run_phases()
        service = role.processes[0]
        assert service.poll() is None  # the server outlived the phase
        if workload == Memcached.name and CLIENT_CPU in os.sched_getaffinity(0):
            # the server itself (the wrapper exec'd it) runs where memaslap binds its thread
            assert os.sched_getaffinity(service.pid) == {CLIENT_CPU}
    finally:
        role.stop()
        kill_tree(hierarchy, group)
        shutil.rmtree(role.context.runtime_dir, ignore_errors=True)
    assert rate > 0
