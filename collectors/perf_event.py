"""perf_event counters per cgroup: hardware where a PMU exists, software always. (being written)"""
