"""ffmpeg transcoding a 720p H.264 clip with libx264 (preset veryfast) to the null muxer; frames per second.

``prepare`` renders a 4 s 1280x720 30 fps clip once (ffmpeg's testsrc2 pattern with light temporal noise, like
sensor grain, so the encoder does real motion search instead of skipping static blocks, encoded at CRF 20).
Each phase decodes that clip in a loop (``-stream_loop -1``, one decoder thread) and re-encodes it with
``-threads {level}`` encoder threads: level = libx264 threads. The clip is short (about a second of encoding
per loop), so the cost per frame is the same whatever part of it a phase covers.

ffmpeg has no wall-clock duration option (``-t`` bounds media time, ``-timelimit`` CPU time and kills without
a report), so the runner interrupts it at the phase deadline: on SIGINT ffmpeg stops reading, flushes the
encoder and prints its final ``frame=`` line and, with ``-benchmark``, the real time of the whole transcode
(``bench: ... rtime=``). The metric is frames / rtime: ffmpeg's own ``fps=`` is rounded to an integer.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cotenant.datasets.lab.workloads.base import WORKLOADS, ParseError, WorkContext, Workload, last_number

CLIP_NAME = "ffmpeg-x264-clip.mp4"
# testsrc2 alone is mostly static (the encoder skips ~85% of macroblocks); grain of strength 3 makes every
# frame differ a little, as a camera's do, and still compresses to ~3.6 Mbit/s at CRF 20.
SOURCE = "testsrc2=size=1280x720:rate=30:duration=4,noise=alls=3:allf=t"


def parse_ffmpeg_fps(output: str) -> float:
    """Encoded frames per second of real time: the last ``frame=`` count over ``-benchmark``'s rtime."""
    # Progress lines are separated by carriage returns; the last one (after the flush) has the final count.
    frames = last_number(r"frame=\s*(\d+)", output, "ffmpeg frame count")
    seconds = last_number(r"bench: utime=[\d.]+s stime=[\d.]+s rtime=([\d.]+)s", output, "ffmpeg rtime")
    if seconds <= 0 or frames <= 0:
        raise ParseError(f"ffmpeg encoded {frames:.0f} frames in {seconds} s")
    return frames / seconds


@WORKLOADS.register("ffmpeg_x264")
class FfmpegX264(Workload):
    name = "ffmpeg_x264"
    unit = "frames_per_second"
    description = "ffmpeg 720p H.264 -> libx264 veryfast transcode, level = encoder threads"
    category = "media"
    stop_at_deadline = True

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

    def phase_command(self, level: int, seconds: int, ctx: WorkContext) -> list[str]:
        return [
            "ffmpeg",
            # stdin is /dev/null in the lab; -nostdin also stops ffmpeg reading keys from a terminal.
            "-nostdin",
            "-hide_banner",
            # -stats is the default but explicit: the progress lines are what carries the frame count.
            "-stats",
            "-benchmark",
            # One decoder thread, so that the level counts only the encoder's threads.
            "-threads",
            "1",
            "-stream_loop",
            "-1",
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

    def parse(self, output: str) -> float:
        return parse_ffmpeg_fps(output)
