"""PostgreSQL 15 driven by pgbench's TPC-B-like read-write transactions over a unix socket; transactions/s.

``prepare`` initialises one cluster with ``pgbench -i -s 10`` (1 M accounts, about 160 MB) in the session's
scratch, cleanly shut down. Every run starts its own server on a fresh copy of that cluster in the role's
directory (pgbench's history table grows and its updates bloat the tables, so a shared cluster would drift
over a session and concurrent roles would collide), listening only on a unix socket in the role's runtime
directory, with ``fsync`` on and 64 MB of shared buffers so that WAL writes, checkpoints and page reads reach
the disk and the page cache as in a real OLTP server (commits do not wait for their own fsync: see
``SERVER_SETTINGS``). Each phase is one ``pgbench -T`` with ``level`` clients (and as many
client threads); the metric is pgbench's ``tps = ... (without initial connection time)``.

PostgreSQL refuses to run as root: the server runs as the ``postgres`` user with one extra capability,
CAP_DAC_READ_SEARCH, so that it can reach its data directory under a lab directory whose ancestors are private
to root (``/root``, pytest's 0700 temporary directories); its files are its own, so it needs no write access
elsewhere. The runner ends a run with SIGKILL, which leaves the server's small SysV shared-memory header
behind; those orphans are removed before each new server starts, since the kernel allows only
``kernel.shmmni`` (4096) segments and a long lab session runs thousands of servers.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext, Workload, last_number


def newest_server_bin(root: Path = Path("/usr/lib/postgresql")) -> Path:
    """Debian installs each major version under /usr/lib/postgresql/<major>/bin; the newest is used."""
    found = sorted(
        (path for path in root.glob("*/bin") if path.parent.name.isdigit()),
        key=lambda path: int(path.parent.name),
    )
    return found[-1] if found else root / "15" / "bin"


PG_BIN = newest_server_bin()
PG_USER = "postgres"
DATABASE = "postgres"
# Drop root for the server, keeping only the right to traverse directories and read files (see the docstring).
AS_POSTGRES = [
    "setpriv",
    f"--reuid={PG_USER}",
    f"--regid={PG_USER}",
    "--init-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
]
# The server's settings, given on its command line (not baked into the template, so a change needs no new
# template): a small OLTP server reachable only through the unix socket given with -k.
SERVER_SETTINGS = {
    "listen_addresses": "",
    "shared_buffers": "64MB",
    "max_connections": "100",
    # Every WAL write and checkpoint is fsynced: the data is crash-safe and the disk is part of the work.
    "fsync": "on",
    "full_page_writes": "on",
    # A checkpoint at the latest every 1 GB of WAL (the default, made explicit): it bounds a run's copy, which
    # a 40 s phase at 2 clients grows from 170 MB to about 480 MB, nearly all of it WAL.
    "max_wal_size": "1GB",
    # A commit does not wait for its own WAL fsync; the WAL writer flushes every 200 ms (a crash loses at most
    # that much, never consistency). Waiting per commit makes a 1-client run a measure of fsync latency, which
    # on a shared virtual disk varies by 2-3x from run to run (measured 890-2600 tps at 1 client), drowning
    # the CPU and memory interference the lab studies; fio_randrw covers storage latency.
    "synchronous_commit": "off",
    # mmap keeps dynamic shared memory inside the data directory, which the run removes (posix would leave
    # /dev/shm/PostgreSQL.* behind after the runner's SIGKILL).
    "dynamic_shared_memory_type": "mmap",
    "logging_collector": "off",
}


def server_options(settings: dict[str, str]) -> list[str]:
    return [option for name, value in settings.items() for option in ("-c", f"{name}={value}")]


# Copy the template (root keeps the postgres ownership with -a) and write the copy out now: left to the
# kernel, its 170 MB would be written back about 30 s later, in the middle of the measurement. Then hand the
# socket directory to postgres and become the server (exec: the runner's process group is the server's, so
# killing the run kills it).
START_SCRIPT = """set -e
rm -rf "$2"
cp -a "$1" "$2"
find "$2" -type f -exec sync {{}} +
chown {user}: "$3"
shift 3
exec "$@"
"""


def parse_pgbench(output: str) -> float:
    return last_number(r"tps = ([\d.]+) \(without initial connection time\)", output, "pgbench tps")


def remove_orphan_segments(uid: int) -> None:
    """Removes SysV shared-memory segments of ``uid`` that nobody attaches and whose creator is dead."""
    with contextlib.suppress(OSError):
        lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            # key shmid perms size cpid lpid nattch uid ...
            shmid, cpid, nattch, owner = fields[1], int(fields[4]), int(fields[6]), int(fields[7])
            if owner != uid or nattch != 0 or Path(f"/proc/{cpid}").exists():
                continue
            subprocess.run(["ipcrm", "-m", shmid], capture_output=True, check=False)


@WORKLOADS.register("postgres_pgbench")
class PostgresPgbench(Workload):
    name = "postgres_pgbench"
    unit = "transactions_per_second"
    description = (
        "PostgreSQL 15 + pgbench TPC-B read-write (scale 10, fsync on, async commit), level = clients"
    )
    category = "oltp"
    # pgbench's scale factor: 100 000 accounts per unit of scale (scale 10: about 160 MB on disk).
    scale: ClassVar[int] = 10

    def template(self, scratch: Path) -> Path:
        return scratch / f"pgbench-s{self.scale}"

    @staticmethod
    def socket_dir(ctx: WorkContext) -> Path:
        return ctx.runtime_dir

    def prepare(self, scratch: Path) -> None:
        template = self.template(scratch)
        ready = template.with_name(template.name + ".ready")
        if ready.exists():
            return  # a resumed session reuses the cluster: every run copies it, none changes it
        shutil.rmtree(template, ignore_errors=True)
        template.mkdir(parents=True)
        user = pwd.getpwnam(PG_USER)
        os.chown(template, user.pw_uid, user.pw_gid)
        # C locale and UTF8: the same collation (and so the same plans and index sizes) on every machine.
        subprocess.run(
            [
                *AS_POSTGRES,
                str(PG_BIN / "initdb"),
                "-D",
                str(template),
                "-U",
                PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        # The load server listens on the socket only (pg_ctl -o cannot pass an empty listen_addresses).
        with (template / "postgresql.conf").open("a") as conf:
            conf.write("\nlisten_addresses = ''\n")
        with tempfile.TemporaryDirectory(prefix="cotenant-pg-") as sockets:
            os.chown(sockets, user.pw_uid, user.pw_gid)
            pg_ctl = [*AS_POSTGRES, str(PG_BIN / "pg_ctl"), "-D", str(template), "-w"]
            # The server's log goes where postgres may write (the scratch directory is root's).
            log = Path(sockets) / "server.log"
            # Minimal WAL for the load only: COPY and index builds then skip the WAL, which would otherwise
            # stay in pg_wal as recycled segments and double the cluster every run copies.
            load_settings = SERVER_SETTINGS | {"wal_level": "minimal", "max_wal_senders": "0"}
            options = " ".join([f"-k {sockets}", *(f"-c {k}={v}" for k, v in load_settings.items() if v)])
            started = subprocess.run(
                [*pg_ctl, "-o", options, "-l", str(log), "start"],
                capture_output=True,
                text=True,
            )
            if started.returncode != 0:
                server_log = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"postgres did not start in {template}: {started.stderr}{server_log}")
            try:
                # Loads the tables, builds the keys and vacuums them: runs start from a clean, analysed state.
                subprocess.run(
                    [
                        str(PG_BIN / "pgbench"),
                        "-i",
                        "-s",
                        str(self.scale),
                        "-q",
                        "-h",
                        sockets,
                        "-U",
                        PG_USER,
                        DATABASE,
                    ],
                    check=True,
                    capture_output=True,
                )
            finally:
                # A clean shutdown (checkpoint) so that a copy starts without crash recovery.
                subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=True, capture_output=True)
        ready.touch()

    def service_command(self, ctx: WorkContext) -> list[str] | None:
        # Servers killed by earlier runs left their segments; removing them here (not at the end of a run,
        # which the runner owns) keeps the count bounded whatever the number of runs.
        remove_orphan_segments(pwd.getpwnam(PG_USER).pw_uid)
        data = ctx.role_dir / "pgdata"
        return [
            "sh",
            "-c",
            START_SCRIPT.format(user=PG_USER),
            "sh",
            str(self.template(ctx.scratch)),
            str(data),
            str(self.socket_dir(ctx)),
            *AS_POSTGRES,
            str(PG_BIN / "postgres"),
            "-D",
            str(data),
            "-k",
            str(self.socket_dir(ctx)),
            *server_options(SERVER_SETTINGS),
        ]

    def service_ready(self, ctx: WorkContext) -> bool:
        # The socket appears before the server accepts connections (it may still be starting up).
        if not (self.socket_dir(ctx) / ".s.PGSQL.5432").exists():
            return False
        done = subprocess.run(
            [
                str(PG_BIN / "pg_isready"),
                "-q",
                "-h",
                str(self.socket_dir(ctx)),
                "-U",
                PG_USER,
                "-d",
                DATABASE,
            ],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return [
            str(PG_BIN / "pgbench"),
            "-h",
            str(self.socket_dir(ctx)),
            "-U",
            PG_USER,
            "-c",
            str(level),
            "-j",
            str(level),
            "-T",
            str(seconds),
            # No vacuum before the run: the template was vacuumed, and each run's copy is fresh.
            "-n",
            DATABASE,
        ]

    def parse(self, output: str) -> float:
        return parse_pgbench(output)
