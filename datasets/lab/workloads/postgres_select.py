"""PostgreSQL 15 driven by pgbench's built-in select-only script (one primary-key lookup per transaction) over
a unix socket; transactions per second.

The server, its cluster and settings are ``postgres_pgbench``'s; the work differs: no writes, no WAL, no
checkpoints, every account page in the shared buffers or the page cache after the first seconds, so a
transaction is one round trip between client and server, and the program's progress is its messages (two
context switches per query) rather than its CPU time or its disk.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, WorkContext
from cotenant.datasets.lab.workloads.postgres_pgbench import PostgresPgbench


@WORKLOADS.register("postgres_select")
class PostgresSelect(PostgresPgbench):
    name = "postgres_select"
    description = "PostgreSQL 15 + pgbench select-only (scale 10), level = clients"

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        command = super().phase_command(level, seconds, ctx)
        # -S: pgbench's built-in select-only script, given before the database name.
        return [*command[:-1], "-S", command[-1]]
