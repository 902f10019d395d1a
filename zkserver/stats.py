"""Counters the four-letter words report (srvr, stat, mntr)."""

from __future__ import annotations


class ServerStats:
    __slots__ = ("start_ms", "packets_received", "packets_sent", "lat_min", "lat_max", "lat_total", "lat_count", "auth_failed")

    def __init__(self, now_ms: int) -> None:
        self.start_ms = now_ms
        self.auth_failed = 0
        self.reset()

    def reset(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.lat_min = 0
        self.lat_max = 0
        self.lat_total = 0
        self.lat_count = 0

    def record_latency(self, ms: int) -> None:
        if self.lat_count == 0 or ms < self.lat_min:
            self.lat_min = ms
        if ms > self.lat_max:
            self.lat_max = ms
        self.lat_total += ms
        self.lat_count += 1

    @property
    def lat_avg(self) -> float:
        return self.lat_total / self.lat_count if self.lat_count else 0.0
