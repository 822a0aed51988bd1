"""KernelFiles: descriptors kept open between samples, fresh content each read, absent files not retried."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cotenant.collectors.base import KernelFiles, read_cgroup_files, read_text


def test_kept_descriptor_reads_fresh_content(tmp_path: Path) -> None:
    path = tmp_path / "cpu.stat"
    path.write_text("usage_usec 10\n")
    files = KernelFiles()
    assert files.read(str(path)) == "usage_usec 10\n"
    with open(path, "r+") as handle:  # rewritten in place, as the kernel regenerates a file's content
        handle.write("usage_usec 25\n")
    assert files.read(str(path)) == "usage_usec 25\n" and files.open_count() == 1


def test_large_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "memory.numa_stat"
    text = "".join(f"key{i}=N0={i}\n" for i in range(20000))  # beyond one read chunk
    path.write_text(text)
    assert KernelFiles().read(str(path)) == text and read_text(path) == text


def test_absent_file_is_retried_only_after_the_retry_interval(tmp_path: Path) -> None:
    path = tmp_path / "memory.pressure"
    patient, eager = KernelFiles(retry_absent_seconds=3600), KernelFiles(retry_absent_seconds=0)
    assert patient.read(str(path)) is None and eager.read(str(path)) is None
    path.write_text("some avg10=0.00\n")
    assert patient.read(str(path)) is None, "not retried within the interval"
    assert eager.read(str(path)) == "some avg10=0.00\n"
    patient.forget(str(tmp_path))  # a target that is gone: its entries are dropped
    assert patient.read(str(path)) == "some avg10=0.00\n"


def test_forget_and_close_release_descriptors(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a/x", "a/y", "b/x"):
        (tmp_path / name).write_text("1\n")
    files = KernelFiles()
    for name in ("a/x", "a/y", "b/x"):
        files.read(str(tmp_path / name))
    before = len(os.listdir("/proc/self/fd"))
    files.forget(str(tmp_path / "a"))
    assert files.open_count() == 1 and len(os.listdir("/proc/self/fd")) == before - 2
    files.close()
    assert files.open_count() == 0


def test_descriptor_limit_falls_back_to_open_read_close(tmp_path: Path) -> None:
    files = KernelFiles(max_open=2)
    for index in range(5):
        (tmp_path / f"f{index}").write_text(f"{index}\n")
        assert files.read(str(tmp_path / f"f{index}")) == f"{index}\n"
    assert files.open_count() == 2


def test_vanished_directory_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="vanished"):
        read_cgroup_files(tmp_path / "gone", {"cpu.stat": lambda text: {}}, KernelFiles())


def test_settings_are_reused_until_their_refresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cpu.stat").write_text("usage_usec 10\n")
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    parsers = {
        "cpu.stat": lambda t: {"usage": float(t.split()[1])},
        "cpu.max": lambda t: {"quota": float(t.split()[0])},
    }
    files = KernelFiles()
    assert read_cgroup_files(tmp_path, parsers, files, {"cpu.max"}) == {"usage": 10.0, "quota": 50000.0}
    (tmp_path / "cpu.stat").write_text("usage_usec 20\n")
    (tmp_path / "cpu.max").write_text("80000 100000\n")
    assert read_cgroup_files(tmp_path, parsers, files, {"cpu.max"}) == {"usage": 20.0, "quota": 50000.0}
    monkeypatch.setattr("cotenant.collectors.base.SETTINGS_REFRESH_SECONDS", 0.0)
    assert read_cgroup_files(tmp_path, parsers, files, {"cpu.max"}) == {"usage": 20.0, "quota": 80000.0}


def test_vanished_directory_raises_even_with_cached_settings(tmp_path: Path) -> None:
    cgroup = tmp_path / "lab"
    cgroup.mkdir()
    (cgroup / "cpu.max").write_text("50000 100000\n")
    (cgroup / "cpu.stat").write_text("usage_usec 10\n")
    files = KernelFiles(max_open=0)  # a kept fd still reads a deleted regular file (cgroupfs: ENODEV)
    parsers = {"cpu.stat": lambda t: {"usage": 1.0}, "cpu.max": lambda t: {"quota": 1.0}}
    assert read_cgroup_files(cgroup, parsers, files, {"cpu.max"}) == {"usage": 1.0, "quota": 1.0}
    for child in cgroup.iterdir():
        child.unlink()
    cgroup.rmdir()
    with pytest.raises(FileNotFoundError, match="vanished"):
        read_cgroup_files(cgroup, parsers, files, {"cpu.max"})
