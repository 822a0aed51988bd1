"""stress-ng msg: a sender and a receiver passing messages through a System V message queue, kernel time and
a context switch every few messages; bogo ops/s. Between the kinds the switch-gated prior tells apart: its
switches per CPU-second (~3 000 in a one-CPU cgroup) lie between the compute kernels' and the storage
programs' and servers'. (stress-ng's pipe stressor, the first choice, moved 0.7-1.7 M ops/s from one solo run
to the next on the lab machine; msg's solos stay within 2%.)"""

from __future__ import annotations

from cotenant.datasets.lab.workloads.base import WORKLOADS, StressNgWorkload


@WORKLOADS.register("stressng_msg")
class StressNgMsg(StressNgWorkload):
    name = "stressng_msg"
    stressor = "msg"
    description = "stress-ng --msg, level = sender/receiver pairs"
    category = "ipc"
