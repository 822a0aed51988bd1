"""A Perl report over the session's 2 MiB web-server log (``compress_input``): every line matched by a regular
expression, bytes summed per path, hits counted per method and status, the messages' words counted; the
busiest words and paths sorted out at the end. Reports per second.

Category "interpreter": the log-summarising script an operator runs, spending its time in Perl's regular
expression engine and interpreter loop, hashing ~20 000 distinct keys into hashes of a few MiB (about 65 ms a
unit on one core of a quiet 2-core VM, of which ~5 ms is starting perl). python_json's sibling: both
interpreters, one dispatching bytecode over objects, this one matching text. Level = concurrent perl
processes (Perl runs one thread).
"""

from __future__ import annotations

from pathlib import Path

from cotenant.datasets.lab.workloads.base import WORKLOADS, RepeatWorkload, WorkContext
from cotenant.datasets.lab.workloads.compress_input import INPUT_NAME, write_log_input

# Fields of compress_input.generate_log's lines: stamp, address, method, path?id=N, status, bytes, "agent",
# message. A line that does not match is skipped (there are none: the test checks every line is counted).
REPORT = r"""
my (%bytes, %hits, %words, $lines, $errors);
while (my $line = <>) {
    next unless $line =~ m{^(\d+) (\S+) (GET|POST|PUT) (/\S*?)\?id=(\d+) (\d{3}) (\d+) "([^"]*)" (.*)$};
    my ($method, $path, $status, $size, $message) = ($3, $4, $6, $7, $9);
    $lines++;
    $bytes{$path} += $size;
    $hits{"$method $status"}++;
    $errors++ if $status >= 500;
    $words{lc $_}++ for split /\s+/, $message;
}
my @words = (sort { $words{$b} <=> $words{$a} || $a cmp $b } keys %words)[0 .. 9];
my @paths = (sort { $bytes{$b} <=> $bytes{$a} || $a cmp $b } keys %bytes)[0 .. 4];
print "lines=$lines errors=$errors\n";
print "words=", join(",", @words), "\n";
print "paths=", join(",", map { "$_:$bytes{$_}" } @paths), "\n";
print "hits=", join(",", map { "$_:$hits{$_}" } sort keys %hits), "\n";
"""


@WORKLOADS.register("perl_logs")
class PerlLogs(RepeatWorkload):
    name = "perl_logs"
    unit = "reports_per_second"
    description = "a Perl report (regex, hashes, sort) over a 2 MiB web-server log, level = perl processes"
    category = "interpreter"

    def prepare(self, scratch: Path) -> None:
        write_log_input(scratch)

    def unit_command(self, level: int, ctx: WorkContext) -> list[str]:
        return ["perl", "-e", REPORT, "--", str(ctx.scratch / INPUT_NAME)]
