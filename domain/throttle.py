"""Back-off after consecutive failures: a pure function of the failure count and its time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    """Free attempts, then an exponential delay, then a lock (RFC 4226 §7.3, PCI DSS 8.3.4)."""

    free_attempts: int = 3
    max_failures: int = 10
    max_delay_seconds: int = 900

    def delay_after(self, consecutive_failures: int) -> int:
        """Seconds to wait after the n-th consecutive failure before the next try."""
        if consecutive_failures < self.free_attempts:
            return 0
        exponent = consecutive_failures - self.free_attempts
        return int(min(self.max_delay_seconds, 2 ** min(exponent, 30)))

    def retry_after(
        self, consecutive_failures: int, last_failure_at: datetime | None, *, at: datetime
    ) -> int:
        """Seconds still to wait at `at` (0 when a try is allowed now)."""
        if last_failure_at is None:
            return 0
        wait = self.delay_after(consecutive_failures)
        remaining = wait - (at - last_failure_at).total_seconds()
        return max(0, math.ceil(remaining))

    def locks(self, consecutive_failures: int) -> bool:
        return consecutive_failures >= self.max_failures
