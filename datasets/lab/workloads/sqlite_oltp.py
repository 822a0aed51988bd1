"""SQLite 3 (the ``sqlite3`` command-line shell) running TPC-B-like transaction scripts; scripts per second.

``prepare`` builds, once per session, a database of 100 000 accounts (about 10 MB, WAL journal mode) and 16
scripts of 2 000 transactions each, generated from a fixed seed so that every session runs the same work. Each
transaction updates an account, a teller and a branch, reads the account back and appends to a history table;
one in five instead sums a range of 200 accounts. Each script starts with ``synchronous=NORMAL`` (commits
append to the WAL without fsync; the WAL is fsynced and copied into the database at each checkpoint, including
the one when the shell exits) and ends by trimming the history, so the database keeps its size however long a
run is.

One unit is one ``sqlite3`` process running one script (cycled through the 16) on its worker's database:
process start, opening the file, the transactions and the final checkpoint, as an application using SQLite
does. Level = parallel workers, each on its own copy of the database (made in the role's directory when the
phase starts): SQLite allows one writer per database, so workers sharing a file would mostly measure lock
waits and retries, not the CPU, cache and disk pressure that co-location changes.
"""

from __future__ import annotations

import random
import shlex
import sqlite3
from pathlib import Path
from typing import ClassVar

from cotenant.datasets.lab.workloads.base import (
    WORKLOADS,
    RepeatWorkload,
    WorkContext,
    repeat_command,
)

SEED = 20240611
BRANCHES = 10
TELLERS = 100
SCRIPTS = 16
HISTORY_KEPT = 5000


def _script(rng: random.Random, accounts: int, transactions: int, synchronous: str = "NORMAL") -> str:
    lines = [".bail on", f"PRAGMA synchronous={synchronous};"]
    for _ in range(transactions):
        aid = rng.randrange(1, accounts + 1)
        if rng.random() < 0.2:
            lines.append(f"SELECT sum(abalance) FROM accounts WHERE aid BETWEEN {aid} AND {aid + 199};")
            continue
        tid, bid, delta = (
            rng.randrange(1, TELLERS + 1),
            rng.randrange(1, BRANCHES + 1),
            rng.randint(-5000, 5000),
        )
        lines += [
            "BEGIN;",
            f"UPDATE accounts SET abalance = abalance + {delta} WHERE aid = {aid};",
            f"SELECT abalance FROM accounts WHERE aid = {aid};",
            f"UPDATE tellers SET tbalance = tbalance + {delta} WHERE tid = {tid};",
            f"UPDATE branches SET bbalance = bbalance + {delta} WHERE bid = {bid};",
            f"INSERT INTO history (tid, bid, aid, delta, mtime) VALUES ({tid}, {bid}, {aid}, {delta}, "
            "CURRENT_TIMESTAMP);",
            "COMMIT;",
        ]
    # Bounded history: the database (and so each unit's work) stays the same size over any number of units.
    lines.append(f"DELETE FROM history WHERE hid <= (SELECT max(hid) FROM history) - {HISTORY_KEPT};")
    return "\n".join(lines) + "\n"


@WORKLOADS.register("sqlite_oltp")
class SqliteOltp(RepeatWorkload):
    name = "sqlite_oltp"
    unit = "scripts_per_second"
    description = (
        "sqlite3 shell, TPC-B-like scripts of 2000 transactions (WAL, synchronous=NORMAL), level = workers"
    )
    category = "embedded_db"
    accounts: ClassVar[int] = 100_000
    transactions: ClassVar[int] = 2000
    # The scripts' durability: NORMAL appends each commit to the WAL without waiting on the disk.
    synchronous: ClassVar[str] = "NORMAL"

    def directory(self, scratch: Path) -> Path:
        durability = "" if self.synchronous == "NORMAL" else f"-{self.synchronous.lower()}"
        return scratch / f"sqlite-oltp-a{self.accounts}-t{self.transactions}{durability}"

    def prepare(self, scratch: Path) -> None:
        directory = self.directory(scratch)
        ready = directory / "ready"
        if ready.exists():
            return
        directory.mkdir(parents=True, exist_ok=True)
        database = directory / "template.db"
        database.unlink(missing_ok=True)
        rng = random.Random(SEED)
        connection = sqlite3.connect(database)
        try:
            connection.executescript(
                """
                PRAGMA journal_mode=WAL;
                CREATE TABLE branches (bid INTEGER PRIMARY KEY, bbalance INTEGER NOT NULL, filler TEXT);
                CREATE TABLE tellers (tid INTEGER PRIMARY KEY, bid INTEGER NOT NULL,
                                      tbalance INTEGER NOT NULL, filler TEXT);
                CREATE TABLE accounts (aid INTEGER PRIMARY KEY, bid INTEGER NOT NULL,
                                       abalance INTEGER NOT NULL, filler TEXT);
                CREATE TABLE history (hid INTEGER PRIMARY KEY, tid INTEGER, bid INTEGER, aid INTEGER,
                                      delta INTEGER, mtime TEXT, filler TEXT);
                """
            )
            # Fillers as in pgbench (rows of about 100 bytes), so the tables span pages as a real table does.
            connection.executemany(
                "INSERT INTO branches VALUES (?, 0, ?)", ((b, "b" * 88) for b in range(1, BRANCHES + 1))
            )
            connection.executemany(
                "INSERT INTO tellers VALUES (?, ?, 0, ?)",
                ((t, 1 + (t - 1) % BRANCHES, "t" * 84) for t in range(1, TELLERS + 1)),
            )
            connection.executemany(
                "INSERT INTO accounts VALUES (?, ?, 0, ?)",
                ((a, 1 + (a - 1) % BRANCHES, "a" * 84) for a in range(1, self.accounts + 1)),
            )
            connection.commit()
            # Checkpoint into the file and drop the WAL: the template is one self-contained file to copy.
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
        scripts = []
        for index in range(SCRIPTS):
            script = directory / f"script-{index:02d}.sql"
            script.write_text(_script(rng, self.accounts, self.transactions, self.synchronous))
            scripts.append(str(script))
        (directory / "scripts.txt").write_text("\n".join(scripts) + "\n")
        ready.touch()

    def items(self, ctx: WorkContext) -> Path | None:
        return self.directory(ctx.scratch) / "scripts.txt"

    @staticmethod
    def database(ctx: WorkContext, worker: str) -> Path:
        return ctx.role_dir / f"sqlite-{worker}.db"

    def unit_command(self, level: int, ctx: WorkContext) -> list[str]:
        return ["sqlite3", str(self.database(ctx, "{worker}")), ".read {item}"]

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        # Each worker's database is copied at the phase's start if this role has none yet (a target's later
        # phases continue on the same files, which the bounded history keeps at the same size).
        template = self.directory(ctx.scratch) / "template.db"
        copies = "; ".join(
            f"[ -e {shlex.quote(str(self.database(ctx, str(worker))))} ] || "
            f"cp {shlex.quote(str(template))} {shlex.quote(str(self.database(ctx, str(worker))))}"
            for worker in range(level)
        )
        return [
            "sh",
            "-c",
            f'set -e; {copies}; exec "$@"',
            "sh",
            *repeat_command(seconds, level, self.unit_command(level, ctx), self.items(ctx)),
        ]
