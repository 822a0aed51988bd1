"""ripgrep (``rg``) searching a regular expression through a 200 MB text corpus; searches per second.

The corpus is generated once per session from a fixed seed (the same bytes on every machine, whatever
packages and manuals it has): lines of words drawn with Zipf frequencies from a made-up vocabulary of 20 000
words, mixed with log-like fields (dates, times, identifiers, numbers, e-mail addresses). One unit is one
``rg -j1 --count`` over the whole corpus (single-threaded: the level, not rg, sets the parallelism) of a
log-line pattern (a time, then two words, the second ending in "s") that has no literal for rg's SIMD
prefilter to skip to, so its lazy DFA steps through every byte (about 0.4 s, 550 MB/s, on a 2020s server core;
a pattern with a rare literal would run at memory speed, 3 GB/s, and measure little but process start-up).
After the first unit the file is in the page cache, so a unit streams 200 MB from memory through the regex
engine: it is bound by the CPU, its caches (the DFA's transition table) and memory bandwidth, not the disk.
Level = parallel workers, each searching the same file. The corpus' size is fixed, so searches per second
times ``corpus_mb`` is the throughput in MB/s.
"""

from __future__ import annotations

import hashlib
import random
from itertools import accumulate
from pathlib import Path
from typing import ClassVar

from cotenant.datasets.lab.workloads.base import WORKLOADS, RepeatWorkload, WorkContext

SEED = 1729
VOCABULARY = 20_000
# Classes only, no literal: the regex engine runs over every byte rather than a prefilter skipping the text.
# It must match (rg exits 1 when nothing matches, which would stop the repeat driver).
PATTERN = r"[0-9]{2}:[0-9]{2}:[0-9]{2} [a-z]+ [a-z]+s\b"
SYLLABLES = [
    onset + vowel + coda
    for onset in [
        "",
        "b",
        "c",
        "d",
        "f",
        "g",
        "h",
        "k",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "v",
        "st",
        "tr",
        "pl",
    ]
    for vowel in ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
    for coda in ["", "n", "r", "s", "t", "l"]
]


def _vocabulary(rng: random.Random) -> list[str]:
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCABULARY:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
        if word and word not in seen:
            seen.add(word)
            words.append(word)
    return words


def generate_corpus(path: Path, megabytes: int, seed: int = SEED) -> str:
    """Writes the corpus (``megabytes`` MiB, whole lines) to ``path``; returns its SHA-256."""
    rng = random.Random(seed)
    words = _vocabulary(rng)
    weights = list(accumulate(1.0 / (rank + 1) for rank in range(len(words))))
    domains = ["org", "com", "net", "io", "de"]
    target = megabytes * 1024 * 1024
    digest = hashlib.sha256()
    written = 0
    temporary = path.with_name(path.name + ".partial")
    with temporary.open("wb") as out:
        while written < target:
            lines = []
            # A block of lines at a time: drawing many words per call is what makes generation fast.
            drawn = rng.choices(words, cum_weights=weights, k=12_000)
            for start in range(0, len(drawn), 12):
                line = drawn[start : start + 12]
                kind = rng.random()
                if kind < 0.15:
                    line.insert(0, f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
                    line.insert(
                        1, f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
                    )
                elif kind < 0.25:
                    line.append(f"id={rng.getrandbits(32):08x} n={rng.randint(0, 99999)}")
                elif kind < 0.27:
                    line.append(f"{line[0]}.{line[1]}@{line[2]}.{rng.choice(domains)}")
                lines.append(" ".join(line))
            block = ("\n".join(lines) + "\n").encode()
            out.write(block)
            digest.update(block)
            written += len(block)
    temporary.replace(path)
    return digest.hexdigest()


@WORKLOADS.register("ripgrep_search")
class RipgrepSearch(RepeatWorkload):
    name = "ripgrep_search"
    unit = "searches_per_second"
    description = "rg -j1 of a log-line regex over a 200 MB generated text corpus, level = workers"
    category = "text"
    corpus_mb: ClassVar[int] = 200

    def corpus(self, scratch: Path) -> Path:
        return scratch / f"ripgrep-corpus-{self.corpus_mb}mb.txt"

    def prepare(self, scratch: Path) -> None:
        # Written to a temporary name and renamed, so an existing file is always complete.
        if not self.corpus(scratch).exists():
            generate_corpus(self.corpus(scratch), self.corpus_mb)

    def unit_command(self, level: int, ctx: WorkContext) -> list[str]:
        # --count: one line of output (repeat.py keeps each unit's output in memory); --no-config: no user
        # configuration (RIPGREP_CONFIG_PATH) changes the search.
        return ["rg", "--no-config", "-j1", "--count", "-e", PATTERN, str(self.corpus(ctx.scratch))]
