"""Figures of one benchmark run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Run:
    name: str
    messages: int
    started: float = 0.0
    published: float = 0.0
    finished: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per message
    # of the same messages, seconds from the publish until routing made the work order (its
    # envelope's `time`): intake and routing, the waits before them included; the rest of each
    # latency is routing's publish and confirm, the broker and the benchmark's consumer
    until_made: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.messages / (self.finished - self.started) if self.finished > self.started else 0.0

    @property
    def publish_per_second(self) -> float:
        return self.messages / (self.published - self.started) if self.published > self.started else 0.0

    def pct(self, q: float, of: list[float] | None = None) -> float:
        """The q-th percentile, in ms, of the latencies (or of `of`)."""
        values = self.latencies if of is None else of
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000
