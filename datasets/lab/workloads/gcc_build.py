"""gcc compiling the C files of GNU libiberty (from Debian's binutils-source), one file per unit; files/s.

``prepare`` extracts libiberty (with binutils' top-level include/ and build scripts) from
``/usr/src/binutils/binutils-*.tar.xz`` once, runs its ``./configure`` (about 10 s, which writes config.h)
and takes the list of C files its own build compiles from ``make -n`` (66 files for binutils 2.40 on Linux),
so the units are exactly a real library build's compilations. A unit is ``gcc -O2 -c FILE -o /dev/null`` with
the build's defines and include paths (a full cc1 + as, the object discarded); ``level`` workers of the
repeat driver take files in turn, so level = parallel compile jobs, like ``make -j``. The metric is files
compiled per second.

Files cost from 20 ms to 0.7 s (regex.c, cp-demangle.c), so the list is ordered to spread the large files
evenly: any stretch of it costs about its length times the mean, and a phase slowed by a neighbour (which
covers a shorter stretch) compiles the same mix as a solo phase.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from cotenant.datasets.lab.workloads.base import WORKLOADS, RepeatWorkload, WorkContext

TREE_NAME = "gcc-build-libiberty"
ITEMS_NAME = "gcc-build-files.txt"
SOURCE_GLOB = "/usr/src/binutils/binutils-*.tar.xz"
# What libiberty's configure needs besides libiberty/ itself: the shared headers and autoconf's helpers.
MEMBERS = ("libiberty", "include", "install-sh", "config.guess", "config.sub", "config", "mkinstalldirs")
# The compile lines of ``make -n``: "... ./regex.c -o regex.o" (the pic/ and noasan/ variants repeat them).
COMPILED = re.compile(r"\./([\w.+-]+\.c) -o [\w.+-]+\.o\b")


def source_tarball() -> Path:
    found = sorted(Path("/").glob(SOURCE_GLOB.lstrip("/")))
    if not found:
        raise FileNotFoundError(f"no {SOURCE_GLOB} (install Debian's binutils-source)")
    return found[-1]


def balanced_order(sizes: dict[str, int]) -> list[str]:
    """The files in an order whose every prefix costs about its length times the mean (size as the cost):
    each next file is the one that brings the running total closest to the next multiple of the mean."""
    remaining = sorted(sizes, key=lambda name: (-sizes[name], name))
    mean = sum(sizes.values()) / len(sizes)
    order: list[str] = []
    total = 0
    while remaining:
        target = (len(order) + 1) * mean
        best = min(remaining, key=lambda name: abs(total + sizes[name] - target))
        remaining.remove(best)
        order.append(best)
        total += sizes[best]
    return order


@WORKLOADS.register("gcc_build")
class GccBuild(RepeatWorkload):
    name = "gcc_build"
    unit = "files_per_second"
    description = "gcc -O2 -c on libiberty's 66 C files, level = parallel compile jobs"
    category = "build"
    # A unit takes up to 0.7 s; shorter phases would count too few of them.
    min_phase_s = 2

    def prepare(self, scratch: Path) -> None:
        items = scratch / ITEMS_NAME
        if items.exists():
            return
        tree = scratch / TREE_NAME
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        tarball = source_tarball()
        prefix = tarball.name.removesuffix(".tar.xz")  # binutils-2.40.tar.xz holds binutils-2.40/...
        # GNU tar (xz through liblzma) extracts the 7 MB needed in ~1.5 s; the top folder is dropped so that
        # the tree has a fixed path whatever the binutils version.
        subprocess.run(
            ["tar", "-xJf", str(tarball), "-C", str(tree), "--strip-components=1"]
            + [f"{prefix}/{name}" for name in MEMBERS],
            check=True,
            capture_output=True,
        )
        source = tree / "libiberty"
        subprocess.run(["./configure"], cwd=source, check=True, capture_output=True)
        plan = subprocess.run(["make", "-n"], cwd=source, check=True, capture_output=True, text=True).stdout
        files = list(dict.fromkeys(COMPILED.findall(plan)))
        if not files:
            raise RuntimeError(f"libiberty's make -n lists no C files in {source}")
        order = balanced_order({name: (source / name).stat().st_size for name in files})
        # Written last: its presence means the tree is complete (prepare is skipped when it exists).
        items.write_text("".join(f"{source / name}\n" for name in order))

    def items(self, ctx: WorkContext) -> Path | None:
        return ctx.scratch / ITEMS_NAME

    def unit_command(self, level: int, ctx: WorkContext) -> list[str]:
        tree = ctx.scratch / TREE_NAME
        return [
            "gcc",
            "-O2",
            # libiberty's own build flags: config.h from configure, the GNU extensions it expects.
            "-DHAVE_CONFIG_H",
            "-D_GNU_SOURCE",
            f"-I{tree / 'libiberty'}",
            f"-I{tree / 'include'}",
            "-c",
            "{item}",
            "-o",
            "/dev/null",
        ]
