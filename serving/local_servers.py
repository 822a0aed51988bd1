"""Starting and stopping the local servers that the main job, the tests and the benchmarks run on loopback:
the prediction service (``bentoml serve``) and a Redis for replicas that share host state."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(command: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A server in a process group of its own, so that ``stop_server`` reaches every worker it starts."""
    return subprocess.Popen(command, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(url: str, process: subprocess.Popen[Any], timeout_s: float, log: Path | None = None) -> None:
    """Poll ``/readyz`` until it answers 200; a process that exits first, or a timeout, raises (with log)."""
    import httpx

    def tail() -> str:
        return f":\n{log.read_text(errors='replace')[-3000:]}" if log is not None and log.exists() else ""

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            code = process.returncode
            raise RuntimeError(f"the service exited with code {code} before it was ready{tail()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the service at {url} was not ready after {timeout_s:.0f} s{tail()}")


def stop_server(process: subprocess.Popen[Any], timeout_s: float = 30.0) -> None:
    """SIGTERM to the server's whole process group, SIGKILL to what is left after ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers that outlived their parent
    process.wait()


class RedisServer:
    """A private ``redis-server`` on a loopback port (no persistence unless asked): ``stop`` and ``start``
    again on the same port model a Redis restart."""

    def __init__(self, directory: Path, port: int | None = None, persistent: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (scripts/install-system-packages.sh)")
        self.binary, self.directory = binary, directory
        self.port = port or free_port()
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        persistence = ["--appendonly", "yes"] if self.persistent else ["--save", "", "--appendonly", "no"]
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen([*command, *persistence], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout_s
        address = ("127.0.0.1", self.port)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_tail = (self.directory / "redis.log").read_text()[-2000:]
                raise RuntimeError(f"redis-server exited: {log_tail}")
            with contextlib.suppress(OSError), socket.create_connection(address, 0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer in {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
