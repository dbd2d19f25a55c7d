"""How many queued jobs a worker takes for one forward pass: the throughput optimum of its own batch shapes,
capped by the latency goal; never a wait for more."""
import dataclasses

from shared.ops.config import load_settings
from worker.batching import claim_size, throughput_optimum
from worker.pipeline import WorkerContext

# seconds per forward pass by batch shape, like a 2-core CPU at Xception 299 (images/s rise up to 8, then fall)
MEASURED = {1: 0.11, 2: 0.20, 4: 0.36, 8: 0.62, 16: 1.50}


def test_the_throughput_optimum_is_the_shape_with_the_most_images_per_second():
    assert throughput_optimum(MEASURED) == 8  # 12.9 images/s, against 10.7 at 16
    assert throughput_optimum({1: 0.1, 2: 0.1, 4: 0.1}) == 4
    # a larger shape within 10% wins: it shares each pass's claim, commit and decoding among more images
    assert throughput_optimum({1: 0.10, 2: 0.21}) == 2
    assert throughput_optimum({1: 0.10, 2: 0.25}) == 1


def test_a_latency_goal_caps_the_batch_at_the_largest_shape_that_fits():
    assert claim_size(MEASURED, 0) == 8  # no goal
    assert claim_size(MEASURED, 400) == 4
    assert claim_size(MEASURED, 2000) == 8  # the goal never makes a batch larger than the optimum
    assert claim_size(MEASURED, 50) == 1  # nothing fits: one image at a time, never none


@dataclasses.dataclass
class _Engine:
    bucket_seconds: dict


def test_the_worker_claims_no_more_than_its_batch_size_setting():
    def limit(**settings):
        return WorkerContext(load_settings(**settings), None, None, _Engine(MEASURED), None, "w", pool=object(),
                             decode_budget=object()).claim_limit

    assert limit(batch_size=16) == 8
    assert limit(batch_size=16, latency_goal_ms=250) == 2
    assert limit(batch_size=2) == 2
