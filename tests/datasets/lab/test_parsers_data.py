"""The data workloads (PostgreSQL/pgbench read-write and select-only, SQLite with and without an fsync per
commit, sysbench fileio, ripgrep, sort): parsers on outputs captured from the real programs on this machine
kind (tests/datasets/lab/captured), their generated inputs, and one short live phase of each (prepare with
small inputs, then a 3 s phase as the runner starts it)."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cotenant.datasets.lab.workloads.postgres_pgbench as postgres_pgbench
import cotenant.datasets.lab.workloads.postgres_select as postgres_select
import cotenant.datasets.lab.workloads.ripgrep_search as ripgrep_search
import cotenant.datasets.lab.workloads.sort_data as sort_data
import cotenant.datasets.lab.workloads.sqlite_fsync as sqlite_fsync
import cotenant.datasets.lab.workloads.sqlite_oltp as sqlite_oltp
import cotenant.datasets.lab.workloads.sysbench_fileio as sysbench_fileio
import pytest
from cotenant.datasets.lab.workloads.base import CATEGORIES, WORKLOADS, ParseError, WorkContext, Workload

CAPTURED = Path(__file__).parent / "captured"
SERVICE_START_TIMEOUT_S = 10.0  # as the runner's

DATA_WORKLOADS: list[type[Workload]] = [
    postgres_pgbench.PostgresPgbench,
    postgres_select.PostgresSelect,
    sqlite_oltp.SqliteOltp,
    sqlite_fsync.SqliteFsync,
    sysbench_fileio.SysbenchFileio,
    ripgrep_search.RipgrepSearch,
    sort_data.SortData,
]


def captured(name: str) -> str:
    return (CAPTURED / name).read_text(errors="replace")


@pytest.mark.parametrize(
    ("workload", "file", "expected"),
    [
        (postgres_pgbench.PostgresPgbench, "pgbench.txt", 5245.523097),
        (postgres_select.PostgresSelect, "pgbench_select.txt", 60081.933549),
        (sqlite_oltp.SqliteOltp, "sqlite_repeat.txt", 7.725683),
        (sqlite_fsync.SqliteFsync, "sqlite_fsync_repeat.txt", 15.905438),
        (ripgrep_search.RipgrepSearch, "ripgrep_repeat.txt", 2.494326),
        (sort_data.SortData, "sort_repeat.txt", 1.103481),
    ],
)
def test_parser_reads_the_metric(workload: type[Workload], file: str, expected: float) -> None:
    assert workload().parse(captured(file)) == pytest.approx(expected)


def test_pgbench_parser_takes_the_rate_without_connection_time() -> None:
    text = "tps = 10.5 (including connections establishing)\ntps = 12.25 (without initial connection time)\n"
    assert postgres_pgbench.parse_pgbench(text) == pytest.approx(12.25)


@pytest.mark.parametrize("workload", DATA_WORKLOADS)
def test_parsers_reject_output_without_a_metric(workload: type[Workload]) -> None:
    with pytest.raises(ParseError):
        workload().parse("command not found\n")
    # A unit that failed: repeat.py prints the unit's output and its own failure line, no rate.
    with pytest.raises(ParseError):
        workload().parse("repeat: unit failed with exit code 2: rg -j1\n")


def test_pgbench_parser_rejects_an_aborted_run() -> None:
    aborted = captured("pgbench.txt").replace("tps = 5245.523097 (without initial connection time)", "")
    with pytest.raises(ParseError, match="pgbench tps"):
        postgres_pgbench.parse_pgbench(aborted)


@pytest.mark.parametrize("workload", DATA_WORKLOADS)
def test_registered_with_a_category(workload: type[Workload]) -> None:
    assert WORKLOADS[workload.name] is workload
    assert workload.category in CATEGORIES and workload.unit and workload.description
    assert workload.higher_is_better


def test_generated_inputs_are_the_same_bytes_every_time(tmp_path: Path) -> None:
    # Every session (and every machine) must search and sort the same data, or rates are not comparable.
    corpus = tmp_path / "corpus.txt"
    digest = ripgrep_search.generate_corpus(corpus, 1)
    assert digest == hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert digest == "64da362b8e866c028d34744864f215cb919084792ff416eba307d229b0894b3c"
    assert corpus.stat().st_size >= 1024 * 1024 and corpus.read_bytes().endswith(b"\n")
    records = tmp_path / "records.csv"
    sort_data.generate_records(records, 1)
    assert hashlib.sha256(records.read_bytes()).hexdigest() == (
        "bf9a6fca590cb89a0254991d5f26d801176cc8af08e6b9f2de13dfe2c1c6b06b"
    )
    assert all(line.count(",") == 5 for line in records.read_text().splitlines()[:1000])


def test_sqlite_fsync_runs_sqlite_oltps_transactions_with_an_fsync_per_commit(tmp_path: Path) -> None:
    oltp, fsync = SmallSqlite(), SmallSqliteFsync()
    oltp.prepare(tmp_path)
    fsync.prepare(tmp_path)
    assert oltp.directory(tmp_path) != fsync.directory(tmp_path)  # each its own scripts
    oltp_script = (oltp.directory(tmp_path) / "script-00.sql").read_text().splitlines()
    fsync_script = (fsync.directory(tmp_path) / "script-00.sql").read_text().splitlines()
    assert oltp_script[1] == "PRAGMA synchronous=NORMAL;" and fsync_script[1] == "PRAGMA synchronous=FULL;"
    # the same seeded transactions, fewer of them
    assert fsync_script[2:12] == oltp_script[2:12]
    assert sum(line == "COMMIT;" for line in fsync_script) < sum(line == "COMMIT;" for line in oltp_script)


def test_commands_use_the_level_as_documented(tmp_path: Path) -> None:
    ctx = WorkContext(scratch=tmp_path / "s", role_dir=tmp_path / "r", runtime_dir=tmp_path / "x")
    pgbench = postgres_pgbench.PostgresPgbench().phase_command(3, 7, ctx)
    assert pgbench[pgbench.index("-c") + 1] == "3" and pgbench[pgbench.index("-j") + 1] == "3"
    assert pgbench[pgbench.index("-T") + 1] == "7" and "-S" not in pgbench  # read-write TPC-B
    select = postgres_select.PostgresSelect().phase_command(3, 7, ctx)
    # the same clients and duration, the select-only script, and the database name still last
    assert select == [*pgbench[:-1], "-S", pgbench[-1]]
    fileio = sysbench_fileio.SysbenchFileio().phase_command(3, 7, ctx)
    assert fileio[:2] == ["sh", "-c"] and fileio[4] == str(ctx.scratch / "sysbench-fileio")
    assert "--threads=3" in fileio and "--time=7" in fileio and "--file-fsync-freq=16" in fileio
    sort = sort_data.SortData().phase_command(3, 7, ctx)
    assert sort[sort.index("--parallel") + 1] == "1" and "--parallel=3" in sort  # one sort of 3 threads
    rg = ripgrep_search.RipgrepSearch().phase_command(3, 7, ctx)
    assert rg[rg.index("--parallel") + 1] == "3" and "-j1" in rg
    sqlite = sqlite_oltp.SqliteOltp().phase_command(3, 7, ctx)
    assert sqlite[:2] == ["sh", "-c"] and sqlite[sqlite.index("--parallel") + 1] == "3"
    assert all(f"sqlite-{worker}.db" in sqlite[2] for worker in range(3))


# Live: prepare with small inputs, then one phase started as the runner starts it (own session; server first).


class SmallPgbench(postgres_pgbench.PostgresPgbench):
    scale = 1


class SmallSelect(postgres_select.PostgresSelect):
    scale = 1


class SmallFileio(sysbench_fileio.SysbenchFileio):
    options = ("--file-num=2", "--file-total-size=8M", "--file-block-size=16384")


class SmallSqlite(sqlite_oltp.SqliteOltp):
    accounts = 10_000
    transactions = 200


class SmallSqliteFsync(sqlite_fsync.SqliteFsync):
    accounts = 10_000
    transactions = 50


class SmallRipgrep(ripgrep_search.RipgrepSearch):
    corpus_mb = 8


class SmallSort(sort_data.SortData):
    file_mb = 4


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkContext]:
    # tmp_path is private to root (0700): the PostgreSQL server, which runs as postgres, must still reach it.
    runtime = Path(tempfile.mkdtemp(prefix="cotenant-lab-test-"))
    ctx = WorkContext(scratch=tmp_path / "scratch", role_dir=tmp_path / "target.d", runtime_dir=runtime)
    ctx.scratch.mkdir()
    ctx.role_dir.mkdir()
    yield ctx
    shutil.rmtree(runtime, ignore_errors=True)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def run_one_phase(
    workload: Workload, ctx: WorkContext, level: int = 2, seconds: int = 3
) -> tuple[float, int | None]:
    """The phase's rate, and the server's pid (None: no server), which has been killed as the runner kills."""
    workload.prepare(ctx.scratch)
    service = None
    command = workload.service_command(ctx)
    if command is not None:
        log = (ctx.role_dir.parent / "service.log").open("ab")
        service = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while service is not None and not workload.service_ready(ctx):
            assert service.poll() is None and time.monotonic() < deadline, (
                ctx.role_dir.parent / "service.log"
            ).read_text(errors="replace")
            time.sleep(0.01)
        done = subprocess.run(
            workload.phase_command(level, seconds, ctx),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            start_new_session=True,
            timeout=seconds + 15,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return workload.parse(done.stdout + done.stderr), None if service is None else service.pid
    finally:
        if service is not None:
            _kill(service)


def _segments_created_by(pid: int) -> list[str]:
    rows = [line.split() for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
    return [row[1] for row in rows if int(row[4]) == pid]


@pytest.mark.live
def test_pgbench_runs_a_phase_and_its_segment_is_removed(context: WorkContext) -> None:
    rate, server = run_one_phase(SmallPgbench(), context)
    assert rate > 0 and server is not None
    # The server was SIGKILLed, as the runner ends a run; once its backends have died too, the next server's
    # start removes the shared-memory header it left (the postmaster is the exec'd shell: same pid).
    uid = pwd.getpwnam(postgres_pgbench.PG_USER).pw_uid
    deadline = time.monotonic() + 10
    while _segments_created_by(server) and time.monotonic() < deadline:
        postgres_pgbench.remove_orphan_segments(uid)
        time.sleep(0.1)
    assert _segments_created_by(server) == []


@pytest.mark.live
def test_select_only_pgbench_runs_on_the_read_write_template(context: WorkContext) -> None:
    rate, server = run_one_phase(SmallSelect(), context)
    assert rate > 0 and server is not None
    # one cluster serves both programs: the select-only one reuses the template the read-write one laid out
    assert SmallSelect().template(context.scratch) == SmallPgbench().template(context.scratch)


@pytest.mark.live
def test_sysbench_fileio_runs_a_phase_in_its_files_directory(context: WorkContext) -> None:
    rate, _ = run_one_phase(SmallFileio(), context)
    assert rate > 0
    files = sorted(path.name for path in (context.scratch / "sysbench-fileio").iterdir())
    assert files == ["test_file.0", "test_file.1"]  # laid out once by prepare, not in the runner's directory


@pytest.mark.live
@pytest.mark.parametrize("workload", [SmallSqlite, SmallSqliteFsync, SmallRipgrep, SmallSort])
def test_repeated_program_runs_a_phase(workload: type[Workload], context: WorkContext) -> None:
    rate, _ = run_one_phase(workload(), context)
    assert rate > 0
