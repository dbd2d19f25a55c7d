"""How many queued jobs a worker claims for one forward pass, from what its model's batch shapes cost.

The worker never waits for a batch to fill: what is queued when a task starts is what runs, so a lone
image at idle goes through at batch 1 at once. Under load the claim grows to the throughput optimum:
the batch shape with the most images per second on this machine and runtime (measured at start, see
InferenceEngine.bucket_seconds), which is not always the largest one. A latency goal
(``XRAY_LATENCY_GOAL_MS``) caps the claim at the largest shape whose forward pass fits in it, trading
throughput for the time each image spends in its batch.
"""
from __future__ import annotations


def throughput_optimum(bucket_seconds: dict[int, float]) -> int:
    """The batch shape with the most images per second of the forward pass, or a larger one within 10% of it:
    every pass also costs a claim, a commit and a round of decoding that this timing does not see, and a
    larger batch shares them among more images (a lone image still runs at once either way)."""
    rates = {shape: shape / max(seconds, 1e-9) for shape, seconds in bucket_seconds.items()}
    best = max(rates.values())
    return max(shape for shape, rate in rates.items() if rate >= 0.9 * best)


def claim_size(bucket_seconds: dict[int, float], latency_goal_ms: float) -> int:
    """Jobs to claim at most for one pass: the throughput optimum, capped by the latency goal (0: none)."""
    size = throughput_optimum(bucket_seconds)
    if latency_goal_ms > 0:
        fitting = [shape for shape, seconds in bucket_seconds.items() if seconds * 1000 <= latency_goal_ms]
        size = min(size, max(fitting, default=1))
    return size
