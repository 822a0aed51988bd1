"""SQLite 3 running sqlite_oltp's TPC-B-like scripts with ``synchronous=FULL``: the WAL is fsynced at every
commit, so each transaction waits on the disk; scripts (of 200 transactions) per second.

The same program, database and transactions as ``sqlite_oltp`` (``sqlite_oltp.py`` has the unit, the
workers and the database), with one durability setting changed: a second embedded database between the
kinds the work-rate reference tells apart. sqlite_oltp (commits without waiting, about 0.7 of a core alone)
makes progress as its CPU time does; here each commit is a write and a flush, as an application that must not
lose a committed transaction runs SQLite, so each transaction also waits on the disk's flush. Scripts are ten
times shorter so that a unit still fits many times in a phase however slow the flushes are.
"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS
from cotenant.datasets.lab.workloads.sqlite_oltp import SqliteOltp


@WORKLOADS.register("sqlite_fsync")
class SqliteFsync(SqliteOltp):
    name = "sqlite_fsync"
    description = (
        "sqlite3 shell, TPC-B-like scripts of 200 transactions (WAL, synchronous=FULL: an fsync per commit), "
        "level = workers"
    )
    transactions = 200
    synchronous = "FULL"
