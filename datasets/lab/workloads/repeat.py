"""Runs a short command over and over until a deadline and prints its rate: the lab's driver for programs
that do one unit of work and exit (compile one file, compress one input, run one query batch).

Standard library only, run as a script (``python3 repeat.py --seconds 12 --parallel 2 -- CMD ...``), so it
starts fast inside a workload's cgroup. ``parallel`` workers each loop: start a unit while the deadline has
not passed, let a started unit finish, count it. A worker's rate is its finished units over the time up to
its last finish, so no unit is counted partially and the tail is not truncated; the reported rate is the sum
over workers. ``{item}`` in the command is replaced by the next line of ``--items`` (cycled), ``{i}`` by the
unit's number and ``{worker}`` by the worker's number. A unit that exits non-zero stops the driver with
its exit code and output, so a broken command fails the run instead of measuring error paths.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import threading
import time

RESULT_FORMAT = "repeat: units={units} seconds={seconds:.3f} rate={rate:.6f} per_second"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--items", help="file with one item per line, substituted for {item}")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    items = [""]
    if args.items:
        with open(args.items) as handle:
            items = [line.strip() for line in handle if line.strip()] or [""]
    counter = itertools.count()
    lock = threading.Lock()
    failure: list[tuple[int, str]] = []
    start = time.monotonic()
    deadline = start + args.seconds
    finished: list[tuple[int, float]] = [(0, 0.0)] * args.parallel

    def work(worker: int) -> None:
        units, last = 0, 0.0
        while time.monotonic() < deadline and not failure:
            with lock:
                number = next(counter)
            argv_unit = [
                part.replace("{item}", items[number % len(items)])
                .replace("{i}", str(number))
                .replace("{worker}", str(worker))
                for part in command
            ]
            done = subprocess.run(argv_unit, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if done.returncode != 0:
                with lock:
                    failure.append((done.returncode, done.stdout[-2000:]))
                return
            units, last = units + 1, time.monotonic() - start
        finished[worker] = (units, last)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(args.parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failure:
        code, output = failure[0]
        sys.stdout.write(output)
        print(f"repeat: unit failed with exit code {code}: {' '.join(command)}", file=sys.stderr)
        return code if 0 < code < 256 else 1
    rate = sum(units / last for units, last in finished if units and last > 0)
    print(
        RESULT_FORMAT.format(
            units=sum(units for units, _ in finished),
            seconds=max(last for _, last in finished),
            rate=rate,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
