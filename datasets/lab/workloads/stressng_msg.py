"""stress-ng msg: a sender and a receiver passing messages through a System V message queue, kernel time and
a context switch every few messages; bogo ops/s. Between the kinds the switch-gated prior tells apart: its
switches per CPU-second (~3 000 in a one-CPU cgroup) lie between the compute kernels' and the storage
programs' and servers'. (stress-ng's pipe stressor, the first choice, moved 0.55-0.82 M ops/s from one solo
run to the next in the lab, 0.75-1.72 M in a one-CPU cgroup outside it; msg's solos there stayed within
2%.)"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, StressNgWorkload


@WORKLOADS.register("stressng_msg")
class StressNgMsg(StressNgWorkload):
    name = "stressng_msg"
    stressor = "msg"
    description = "stress-ng --msg, level = sender/receiver pairs"
    category = "ipc"
