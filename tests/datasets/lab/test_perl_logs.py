"""perl_logs: the parser on an output captured from the real program on this machine kind, and the Perl report
itself run for real over the session's log, checked against the same summary computed here in Python."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from cotenant.datasets.lab.workloads.base import CATEGORIES, ParseError, WorkContext
from cotenant.datasets.lab.workloads.compress_input import INPUT_NAME, generate_log
from cotenant.datasets.lab.workloads.perl_logs import PerlLogs

CAPTURED = Path(__file__).parent / "captured"
LINE = re.compile(r'^\d+ \S+ (GET|POST|PUT) (/\S*?)\?id=\d+ (\d{3}) (\d+) "[^"]*" (.*)$')


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> WorkContext:
    root = tmp_path_factory.mktemp("perl_logs")
    PerlLogs().prepare(root)
    return WorkContext(scratch=root, role_dir=root / "role", runtime_dir=root / "run")


def report_fields(output: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith("lines="):
            fields.update(part.split("=", 1) for part in line.split())
        elif "=" in line:
            key, value = line.split("=", 1)
            fields[key] = value
    return fields


def test_parser_reads_the_rate() -> None:
    assert PerlLogs().parse((CAPTURED / "perl_logs_repeat.txt").read_text()) == pytest.approx(11.359767)
    with pytest.raises(ParseError):
        PerlLogs().parse("Can't locate perl\n")


def test_declared_as_an_interpreter_reading_the_shared_log(context: WorkContext) -> None:
    workload = PerlLogs()
    assert workload.category in CATEGORIES and workload.category == "interpreter"
    assert (context.scratch / INPUT_NAME).read_bytes() == generate_log()
    command = workload.phase_command(2, 6, context)
    assert "--seconds 6" in " ".join(command) and "--parallel 2" in " ".join(command)


def test_report_summarises_every_line_as_python_does(context: WorkContext) -> None:
    done = subprocess.run(
        PerlLogs().unit_command(1, context), capture_output=True, text=True, timeout=60, check=True
    )
    fields = report_fields(done.stdout)
    lines = generate_log().decode("ascii").splitlines()
    # The log's last line is cut at 2 MiB: it is the only one the expression may skip.
    matched = [m for m in (LINE.match(line) for line in lines) if m]
    assert len(matched) >= len(lines) - 1
    assert int(fields["lines"]) == len(matched)
    assert int(fields["errors"]) == sum(int(m.group(3)) >= 500 for m in matched)
    hits = Counter(f"{m.group(1)} {m.group(3)}" for m in matched)
    assert fields["hits"] == ",".join(f"{key}:{hits[key]}" for key in sorted(hits))
    volume: Counter[str] = Counter()
    for m in matched:
        volume[m.group(2)] += int(m.group(4))
    top = sorted(volume.items(), key=lambda item: (-item[1], item[0]))[:5]
    assert fields["paths"] == ",".join(f"{path}:{total}" for path, total in top)
    words = Counter(word.lower() for m in matched for word in m.group(5).split())
    busiest = sorted(words.items(), key=lambda item: (-item[1], item[0]))[:10]
    assert fields["words"] == ",".join(word for word, _ in busiest)


def test_a_real_phase_reports_a_rate(context: WorkContext) -> None:
    workload = PerlLogs()
    done = subprocess.run(
        workload.phase_command(1, 2, context), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert workload.parse(done.stdout) > 1
