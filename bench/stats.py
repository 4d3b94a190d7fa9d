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

    @property
    def per_second(self) -> float:
        return self.messages / (self.finished - self.started) if self.finished > self.started else 0.0

    @property
    def publish_per_second(self) -> float:
        return self.messages / (self.published - self.started) if self.published > self.started else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000
