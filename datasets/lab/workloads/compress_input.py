"""The input every compression workload compresses (and perl_logs summarises): a 2 MiB synthetic text log,
written once per session.

``generate_log`` makes web-server-like log lines (timestamps, addresses, request paths, status codes, user
agents and messages of Zipf-distributed words) from a fixed-seed generator, so every session and machine
gets the same bytes and each compressor the same work. ``LogCompressWorkload`` is a repeat workload whose
unit is one compressor process over that file, its output sent to /dev/null (the repeat driver pipes a
unit's stdout into memory); ``level`` workers run units side by side, so level = concurrent
single-threaded compressor processes and the metric is files compressed per second (x 2 = MiB/s).
"""

from __future__ import annotations

import random
import shlex
from pathlib import Path
from typing import ClassVar

from cotenant.datasets.lab.workloads.base import RepeatWorkload, WorkContext

INPUT_NAME = "compress-input.log"
INPUT_BYTES = 2 * 1024 * 1024
SEED = 20240607


def generate_log(size: int = INPUT_BYTES, seed: int = SEED) -> bytes:
    """``size`` bytes of synthetic log lines, the same for the same seed (``random.Random`` with an int seed
    and these calls is stable across Python versions)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(3000)]
    # Word frequencies fall off as in natural language, which is what gives text its redundancy.
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    paths = ["/" + "/".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(400)]
    agents = [f"client/{rng.randint(1, 9)}.{rng.randint(0, 20)} ({rng.choice(words)})" for _ in range(30)]
    lines: list[str] = []
    length = 0
    stamp = 1_700_000_000
    while length < size:
        stamp += rng.randint(0, 3)
        message = " ".join(rng.choices(words, weights, k=rng.randint(3, 14)))
        line = (
            f"{stamp} 10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} "
            f"{rng.choice(('GET', 'GET', 'GET', 'POST', 'PUT'))} "
            f"{rng.choice(paths)}?id={rng.randint(1, 99999)} "
            f"{rng.choice((200, 200, 200, 200, 304, 404, 500))} {rng.randint(100, 90000)} "
            f'"{rng.choice(agents)}" {message}\n'
        )
        lines.append(line)
        length += len(line)
    return "".join(lines).encode("ascii")[:size]


def write_log_input(scratch: Path) -> Path:
    """The session's log under ``scratch``, written once (renamed into place when whole, so an existing
    file of the right size is never a partial one); every program reading the log prepares it here."""
    target = scratch / INPUT_NAME
    if target.exists() and target.stat().st_size == INPUT_BYTES:
        return target
    partial = target.with_suffix(".partial")
    partial.write_bytes(generate_log())
    partial.rename(target)
    return target


class LogCompressWorkload(RepeatWorkload):
    """One single-threaded compressor process over the session's log per unit; subclasses name the
    compressor's command (without its input and output, which are the log and stdout)."""

    category = "compression"
    compressor: ClassVar[tuple[str, ...]]

    def prepare(self, scratch: Path) -> None:
        write_log_input(scratch)

    def unit_command(self, level: int, ctx: WorkContext) -> list[str]:
        command = shlex.join([*self.compressor, "-c", "--", str(ctx.scratch / INPUT_NAME)])
        # exec: the driver's unit is the compressor itself, not a shell waiting on it.
        return ["sh", "-c", f"exec {command} > /dev/null"]
