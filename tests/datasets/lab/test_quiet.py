"""The quiet-host gate: parsers of /proc/stat and PSI, and the wait on a fake procfs whose load changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cotenant.datasets.lab.quiet import HostProbe, QuietSpec, parse_cpu_ticks, parse_psi_total, wait_for_quiet

STAT = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 0 1 1 0 0\nintr 1\n"
PSI = "some avg10=1.00 avg60=0.50 avg300=0.10 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"


def test_parsers() -> None:
    busy, total = parse_cpu_ticks(STAT)
    assert (busy, total) == (100 + 5 + 50 + 1 + 2 + 3, 100 + 5 + 50 + 1000 + 20 + 1 + 2 + 3)
    assert parse_psi_total(PSI) == 123456
    with pytest.raises(ValueError, match="cpu line"):
        parse_cpu_ticks("intr 1\n")
    with pytest.raises(ValueError, match="some"):
        parse_psi_total("full total=1\n")


class FakeHost:
    """A procfs whose counters advance by the given (busy ticks, idle ticks, stall us) per 1 s window."""

    def __init__(self, root: Path, windows: list[tuple[int, int, int]]) -> None:
        self.root, self.windows = root, list(windows)
        (root / "pressure").mkdir(parents=True)
        self.busy = self.idle = self.stall = 0
        self.now = 0.0
        self.write()

    def clock(self) -> float:
        return self.now

    def write(self) -> None:
        (self.root / "stat").write_text(f"cpu  {self.busy} 0 0 {self.idle} 0 0 0 0 0 0\n")
        (self.root / "pressure" / "cpu").write_text(f"some avg10=0 avg60=0 avg300=0 total={self.stall}\n")

    def sleep(self, seconds: float) -> None:
        busy, idle, stall = self.windows.pop(0)
        self.now += 1.0
        self.busy, self.idle, self.stall = self.busy + busy, self.idle + idle, self.stall + stall
        self.write()


def test_waits_while_busy_then_records_the_quiet_window(tmp_path: Path) -> None:
    # 2 cores: 180 busy of 200 ticks = 1.8 cores; then 1.0 core; then 0.05 cores with 1 ms of stall.
    host = FakeHost(tmp_path, [(180, 20, 900_000), (100, 100, 10_000), (5, 195, 1_000)])
    seen: list[float] = []
    load = wait_for_quiet(
        QuietSpec(), 2, HostProbe(tmp_path), host.sleep, lambda busy, *_: seen.append(busy), host.clock
    )
    assert seen == pytest.approx([1.8, 1.0])
    assert load.quiet and load.busy_cpus == pytest.approx(0.05)
    assert load.cpu_pressure is not None and load.cpu_pressure > 0
    assert not host.windows


def test_cpu_pressure_alone_keeps_it_waiting(tmp_path: Path) -> None:
    # Idle CPUs but some task stalled for half of the window.
    host = FakeHost(tmp_path, [(1, 199, 500_000), (1, 199, 0)])
    load = wait_for_quiet(QuietSpec(), 2, HostProbe(tmp_path), host.sleep, clock=host.clock)
    assert load.quiet and load.cpu_pressure == 0 and not host.windows


def test_gives_up_after_max_wait_and_says_so(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, [(200, 0, 0)] * 3)
    load = wait_for_quiet(QuietSpec(max_wait_s=0), 2, HostProbe(tmp_path), host.sleep, clock=host.clock)
    assert not load.quiet and load.busy_cpus == pytest.approx(2.0)
