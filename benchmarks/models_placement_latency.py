"""Scheduler-time latency: score 500 candidate hosts for one workload with cached host encodings, side by side
with 500 full cloudformer forwards in the same run; plus cloudformer training time and runs/s on a source.

    .venv/bin/python benchmarks/models_placement_latency.py [--data synthetic] [--hosts 500] [--epochs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def median_ms(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--incumbents", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    from cotenant.datasets import load_source
    from cotenant.models.base import set_torch_threads
    from cotenant.training.config import TrainConfig
    from cotenant.training.run import train

    set_torch_threads()
    table = load_source(args.data)
    placement = train(
        TrainConfig(
            model="placement", source=args.data, epochs=args.epochs, progress=False, tracking_uri="none"
        ),
        table,
    ).outcome.predictor
    monitoring = train(
        TrainConfig(
            model="cloudformer", source=args.data, epochs=args.epochs, progress=False, tracking_uri="none"
        ),
        table,
    )
    cloudformer = monitoring.outcome.predictor

    rng = np.random.default_rng(0)
    summaries = rng.normal(size=(args.hosts * args.incumbents + 1, placement.metadata.n_inputs)).astype(
        np.float32
    )
    encoded = placement.encode_summaries(summaries)
    hosts = [
        placement.encode_host(list(encoded[1 + h * args.incumbents : 1 + (h + 1) * args.incumbents]))
        for h in range(args.hosts)
    ]
    newcomer = encoded[0]
    # The cache a scheduler keeps: host encodings stacked once per host-state change, not per query.
    batch = placement.stack_hosts(hosts)
    stack = median_ms(lambda: placement.stack_hosts(hosts), args.repeats)
    arrays = median_ms(lambda: placement.score_placement_arrays(newcomer, batch, explain=False), args.repeats)
    arrays_explained = median_ms(lambda: placement.score_placement_arrays(newcomer, batch), args.repeats)
    unstacked = median_ms(
        lambda: placement.score_placement_arrays(newcomer, hosts, explain=False), args.repeats
    )
    objects = median_ms(lambda: placement.score_placement(newcomer, batch), args.repeats)

    steps = min(cloudformer.metadata.max_steps, 60)
    x = torch.zeros(args.hosts, steps, cloudformer.metadata.n_inputs)
    mask = torch.ones(args.hosts, steps, dtype=torch.bool)
    with torch.inference_mode():
        full = median_ms(lambda: cloudformer.model(x, mask), max(3, args.repeats // 10))

    # The placement-task baseline through the same cached path (its summaries are its embeddings).
    forest = train(
        TrainConfig(model="placement-forest", source=args.data, progress=False, tracking_uri="none"), table
    ).outcome.predictor
    forest_encoded = forest.encode_summaries(summaries)
    forest_batch = forest.stack_hosts(
        [
            forest.encode_host(list(forest_encoded[1 + h * args.incumbents : 1 + (h + 1) * args.incumbents]))
            for h in range(args.hosts)
        ]
    )
    forest_ms = median_ms(
        lambda: forest.score_placement_arrays(forest_encoded[0], forest_batch, explain=False),
        max(3, args.repeats // 10),
    )

    m = monitoring.metrics
    print(
        f"placement scoring, {args.hosts} hosts x {args.incumbents} incumbents (cached encodings), median ms:"
    )
    print(f"  stacked hosts, P only          {arrays:8.3f}   <- the scheduler-time figure")
    print(f"  stacked hosts, P + drivers     {arrays_explained:8.3f}")
    print(f"  host list, P only (stack+score){unstacked:8.3f}")
    print(f"  Estimate objects + drivers     {objects:8.3f}")
    print(f"  stacking {args.hosts} hosts (per host-state change) {stack:8.3f}")
    print(f"  placement-forest baseline, stacked hosts, P only {forest_ms:8.3f}")
    print(
        f"  baseline: {args.hosts} cloudformer forwards (batched, T={steps}) {full:8.1f}  "
        f"ratio {full / arrays:.0f}x"
    )
    print(
        f"cloudformer training on {args.data}: {m['train_seconds']:.1f} s for {args.epochs} epochs, "
        f"{m['runs_per_second']:.0f} runs/s, test MAE {m['mae']:.2f} pp"
    )


if __name__ == "__main__":
    main()
