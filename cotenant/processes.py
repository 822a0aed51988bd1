"""Waiting on child processes without deafening the parent to Ctrl-C and SIGTERM."""

from __future__ import annotations

import subprocess
import time
from typing import Any


def wait_interruptibly(process: subprocess.Popen[Any], poll_s: float = 0.2) -> int:
    """``process.wait()`` that lets signal handlers run.

    Python runs signal handlers on the main thread only. The kernel may hand a process-directed signal to any
    thread (Polars, tokio and BLAS pools all have some), and a main thread blocked in ``waitpid`` is never
    interrupted: Ctrl-C was ignored until the child exited. Sleeping in short steps keeps the main thread
    returning to the interpreter, where the pending handler (KeyboardInterrupt, a forwarder) runs.
    """
    while (code := process.poll()) is None:
        time.sleep(poll_s)
    return code
