"""`make bench`: OneGrid's throughput and latency beside the raw broker's ceiling, in one run."""
