"""ffmpeg_x264, gcc_build and the compressors (xz, gzip, bzip2, zstd from direct reads): parsers on outputs
captured from the real programs on this machine kind (tests/datasets/lab/captured), their command lines and
inputs, and one real phase of each (live)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import cotenant.datasets.lab.workloads.compress_input as compress_input
import cotenant.datasets.lab.workloads.ffmpeg_x264 as ffmpeg_x264
import cotenant.datasets.lab.workloads.gcc_build as gcc_build
import cotenant.datasets.lab.workloads.xz_compress as xz_compress
import cotenant.datasets.lab.workloads.zstd_direct as zstd_direct
import pytest
from cotenant.datasets.lab.workloads.base import CATEGORIES, WORKLOADS, ParseError, WorkContext, Workload

CAPTURED = Path(__file__).parent / "captured"
NAMES = ("ffmpeg_x264", "gcc_build", "xz_compress", "gzip_compress", "bzip2_compress", "zstd_direct")
COMPRESSORS = {"xz_compress": "xz", "gzip_compress": "gzip", "bzip2_compress": "bzip2"}


def captured(name: str) -> str:
    return (CAPTURED / name).read_text(errors="replace")


@pytest.mark.parametrize(
    ("name", "file", "expected"),
    [
        # 0.435098 transcodes per second of the 120-frame clip (a busy host: about 2.3 s each).
        ("ffmpeg_x264", "ffmpeg_x264.txt", 0.435098 * 120),
        ("gcc_build", "gcc_build_repeat.txt", 11.380629),
        ("xz_compress", "xz_repeat.txt", 2.555780),
        ("gzip_compress", "gzip_repeat.txt", 8.256170),
        ("bzip2_compress", "bzip2_repeat.txt", 5.887656),
        ("zstd_direct", "zstd_direct_repeat.txt", 2.503812),
    ],
)
def test_parser_reads_the_metric(name: str, file: str, expected: float) -> None:
    assert WORKLOADS[name]().parse(captured(file)) == pytest.approx(expected)


@pytest.mark.parametrize("name", NAMES)
def test_parsers_reject_output_without_a_metric(name: str) -> None:
    with pytest.raises(ParseError):
        WORKLOADS[name]().parse("command not found\n")


@pytest.mark.parametrize("name", NAMES)
def test_declared_and_time_bounded(name: str, tmp_path: Path) -> None:
    workload = WORKLOADS[name]()
    assert workload.name == name and workload.unit and workload.higher_is_better
    assert workload.category in CATEGORIES and workload.description
    context = WorkContext(scratch=tmp_path, role_dir=tmp_path, runtime_dir=tmp_path)
    command = workload.phase_command(2, 6, context)  # built without prepare (the catalogue test does so)
    assert workload.stop_at_deadline or "--seconds 6" in " ".join(command)


def test_ffmpeg_level_is_the_encoder_threads(tmp_path: Path) -> None:
    context = WorkContext(scratch=tmp_path, role_dir=tmp_path, runtime_dir=tmp_path)
    command = ffmpeg_x264.FfmpegX264().phase_command(3, 6, context)
    assert command[command.index("--parallel") + 1] == "1"  # one transcode at a time: level is threads
    unit = command[command.index("--") + 1 :]
    after_input = unit[unit.index("-i") :]
    assert after_input[after_input.index("-threads") + 1] == "3"
    assert unit[unit.index("-threads") + 1] == "1"  # the decoder's, before -i
    assert "-nostdin" in unit and unit[-3:] == ["-f", "null", "-"]


def test_repeat_units_discard_their_output(tmp_path: Path) -> None:
    context = WorkContext(scratch=tmp_path, role_dir=tmp_path, runtime_dir=tmp_path)
    xz_unit = xz_compress.XzCompress().unit_command(1, context)
    assert xz_unit[:2] == ["sh", "-c"] and xz_unit[2].endswith("> /dev/null") and "-T1" in xz_unit[2]
    gcc_unit = gcc_build.GccBuild().unit_command(1, context)
    assert gcc_unit[-4:] == ["-c", "{item}", "-o", "/dev/null"]


@pytest.mark.parametrize(("name", "program"), COMPRESSORS.items())
def test_compressors_compress_the_shared_log_single_threaded(name: str, program: str, tmp_path: Path) -> None:
    context = WorkContext(scratch=tmp_path, role_dir=tmp_path, runtime_dir=tmp_path)
    unit = WORKLOADS[name]().unit_command(3, context)  # level is processes, never a compressor's threads
    assert unit[:2] == ["sh", "-c"]
    words = unit[2].split()
    source = str(tmp_path / compress_input.INPUT_NAME)
    assert words[:2] == ["exec", program] and words[-4:] == ["--", source, ">", "/dev/null"]
    assert "-c" in words and not any(word.startswith("-T") and word != "-T1" for word in words)


def test_zstd_direct_reads_its_input_past_the_page_cache(tmp_path: Path) -> None:
    context = WorkContext(scratch=tmp_path, role_dir=tmp_path, runtime_dir=tmp_path)
    unit = zstd_direct.ZstdDirect().unit_command(3, context)  # level is pipelines, never zstd's threads
    assert unit[:2] == ["sh", "-c"]
    reader, compressor = (part.split() for part in unit[2].split("|"))
    source = tmp_path / f"{zstd_direct.ZstdDirect.copies}x-{zstd_direct.INPUT_NAME}"
    assert reader[0] == "dd" and f"if={source}" in reader and "iflag=direct" in reader
    assert compressor[:2] == ["zstd", "-1"] and compressor[-2:] == [">", "/dev/null"]
    assert not any(word.startswith("-T") for word in compressor)


def test_compress_input_is_the_same_bytes_everywhere() -> None:
    data = compress_input.generate_log()
    assert len(data) == compress_input.INPUT_BYTES
    # Pinned: a different input would change the metric between sessions or Python versions.
    assert hashlib.sha256(data).hexdigest() == (
        "7c676c52fce4aecfbe07fa7fb2b3442fd6333650a17961a3352bb0edabaf70f2"
    )


def test_balanced_order_spreads_the_large_files() -> None:
    sizes = {"big": 100, "huge": 190, **{f"small{i}": 10 for i in range(20)}}
    order = gcc_build.balanced_order(sizes)
    assert sorted(order) == sorted(sizes)
    mean = sum(sizes.values()) / len(sizes)
    total = 0
    for count, name in enumerate(order, start=1):
        total += sizes[name]
        assert abs(total - count * mean) <= max(sizes.values()) / 2 + mean
    # The two large files are not adjacent, and neither opens the list.
    assert abs(order.index("big") - order.index("huge")) > 3 and order[0].startswith("small")


def run_phase(workload: Workload, level: int, seconds: int, scratch: Path, log: Path) -> float:
    """One phase as the lab runner runs it: own session, output to a log, SIGINT at the deadline if needed."""
    context = WorkContext(scratch=scratch, role_dir=scratch, runtime_dir=scratch)
    with log.open("wb") as output:
        process = subprocess.Popen(
            workload.phase_command(level, seconds, context),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if workload.stop_at_deadline:
                try:
                    process.wait(timeout=seconds)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=seconds + 15)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return workload.parse(log.read_text(errors="replace"))


def live_phase(name: str, program: str, tmp_path: Path) -> float:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (scripts/install-system-packages.sh)")
    workload = WORKLOADS[name]()
    workload.prepare(tmp_path)
    workload.prepare(tmp_path)  # a second session's prepare reuses the inputs
    return run_phase(workload, 1, 3, tmp_path, tmp_path / "phase.log")


@pytest.mark.live
def test_ffmpeg_x264_phase_for_real(tmp_path: Path) -> None:
    assert live_phase("ffmpeg_x264", "ffmpeg", tmp_path) > 0


@pytest.mark.live
@pytest.mark.slow
def test_gcc_build_phase_for_real(tmp_path: Path) -> None:
    if not Path("/usr/src/binutils").is_dir():
        pytest.skip("binutils-source is not installed (scripts/install-system-packages.sh)")
    assert live_phase("gcc_build", "gcc", tmp_path) > 0
    assert len((tmp_path / gcc_build.ITEMS_NAME).read_text().split()) > 50


@pytest.mark.live
@pytest.mark.parametrize(("name", "program"), COMPRESSORS.items())
def test_compressor_phase_for_real(name: str, program: str, tmp_path: Path) -> None:
    assert live_phase(name, program, tmp_path) > 0
    assert (tmp_path / compress_input.INPUT_NAME).stat().st_size == compress_input.INPUT_BYTES


class SmallZstdDirect(zstd_direct.ZstdDirect):
    copies = 2


@pytest.mark.live
def test_zstd_direct_phase_for_real(tmp_path: Path) -> None:
    if shutil.which("zstd") is None:
        pytest.skip("zstd is not installed (scripts/install-system-packages.sh)")
    workload = SmallZstdDirect()
    workload.prepare(tmp_path)
    workload.prepare(tmp_path)  # a second session's prepare reuses the input
    assert run_phase(workload, 1, 3, tmp_path, tmp_path / "phase.log") > 0
    source = tmp_path / f"2x-{zstd_direct.INPUT_NAME}"
    assert source.read_bytes() == compress_input.generate_log() * 2
