"""Loopback TCP ports for workloads whose servers or load generators cannot use unix sockets (nginx + wrk,
memcached + memaslap): drawn per role at service start, read back by every phase."""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

from cotenant.datasets.lab.workloads.base import WorkContext

# Ports are drawn below the kernel's ephemeral range so that no client connection of this or another role
# (wrk, memaslap...) can hold the port between the draw and the server's bind.
PORT_FLOOR = 10000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_floor() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    return 32768


def _port_is_free(port: int) -> bool:
    # No SO_REUSEADDR: a port still in TIME_WAIT from an earlier run counts as taken, which is conservative.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port nobody is bound to, outside the ephemeral range when that leaves room."""
    ceiling = _ephemeral_floor()
    if ceiling - PORT_FLOOR >= 1000:
        # Random rather than sequential so that concurrent lab sessions rarely draw the same candidate.
        for candidate in random.sample(range(PORT_FLOOR, ceiling), 200):
            if _port_is_free(candidate):
                return candidate
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def reserve_port(ctx: WorkContext, service: str) -> int:
    """The role's port for ``service``: drawn once (at service start) and read back by every phase."""
    path = ctx.runtime_dir / f"{service}.port"
    if path.exists():
        return int(path.read_text())
    port = free_port()
    path.write_text(f"{port}\n")
    return port


def port_accepts(port: int) -> bool:
    """Whether a server accepts TCP connections on 127.0.0.1:``port`` (a service's readiness)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
