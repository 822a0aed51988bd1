"""ffmpeg transcoding a 720p H.264 clip with libx264 (preset veryfast) to the null muxer; frames per second.

``prepare`` renders a 4 s 1280x720 30 fps clip once (ffmpeg's testsrc2 pattern with light temporal noise, like
sensor grain, so the encoder does real motion search instead of skipping static blocks, encoded at CRF 20).
One unit of work transcodes that clip once (120 frames, one decoder thread, ``-threads {level}`` encoder
threads: level = libx264 threads), about a second alone; ``repeat.py`` runs units one after another until the
phase's deadline, and the metric is finished units per second times the clip's frames.

Why units rather than one long transcode interrupted at the deadline: ffmpeg has no wall-clock duration
option, and on SIGINT it stops reading and flushes the encoder, which on a contended host took up to 14 s
(26 s for a 12 s phase in the lab): frames over that real time under-counted the contended rate and left
the target running past its neighbours.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cotenant.datasets.lab.workloads.base import (
    WORKLOADS,
    RepeatWorkload,
    WorkContext,
    parse_repeat,
    repeat_command,
)

CLIP_NAME = "ffmpeg-x264-clip.mp4"
CLIP_FRAMES = 120  # 4 s at 30 fps: one unit of work
# testsrc2 alone is mostly static (the encoder skips ~85% of macroblocks); grain of strength 3 makes every
# frame differ a little, as a camera's do, and still compresses to ~3.6 Mbit/s at CRF 20.
SOURCE = "testsrc2=size=1280x720:rate=30:duration=4,noise=alls=3:allf=t"


@WORKLOADS.register("ffmpeg_x264")
class FfmpegX264(RepeatWorkload):
    name = "ffmpeg_x264"
    unit = "frames_per_second"
    description = (
        "ffmpeg 720p H.264 -> libx264 veryfast transcodes of a 120-frame clip, level = encoder threads"
    )
    category = "media"

    def prepare(self, scratch: Path) -> None:
        clip = scratch / CLIP_NAME
        if clip.exists():
            return
        partial = clip.with_suffix(".partial.mp4")
        # Rendered once per session (about 2 s); a half-written clip is never left under the final name.
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                SOURCE,
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "20",
                "-pix_fmt",
                "yuv420p",
                "-threads",
                "1",
                "-y",
                str(partial),
            ],
            check=True,
            capture_output=True,
        )
        partial.rename(clip)

    def unit_command(self, level: int, ctx: WorkContext) -> list[str]:
        return [
            "ffmpeg",
            # stdin is /dev/null in the lab; -nostdin also stops ffmpeg reading keys from a terminal.
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            # One decoder thread, so that the level counts only the encoder's threads.
            "-threads",
            "1",
            "-i",
            str(ctx.scratch / CLIP_NAME),
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-threads",
            str(level),
            "-f",
            "null",
            "-",
        ]

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        # One transcode at a time: the level is the encoder's threads, not parallel transcodes.
        return repeat_command(seconds, 1, self.unit_command(level, ctx))

    def parse(self, output: str) -> float:
        return parse_repeat(output) * CLIP_FRAMES
