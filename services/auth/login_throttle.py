"""Progressive delays for wrong passwords, per account *and* client address.

A hard per-account block let anyone lock an owner out with five wrong guesses from anywhere.
Here failures count per (account, client address): after `free_failures` of them, that client
must wait before its next attempt on that account, twice as long after each further failure
(up to `max_delay`). The owner, from another address, is not slowed by someone else's guesses;
a client spraying many accounts meets the per-address limit instead (flask-limiter, api.py).
No library fits: `limits` and flask-limiter count requests in windows, not growing waits.
"""

from __future__ import annotations

import hashlib
import math
import time

import redis

#: Failures are forgotten this long after the last one (a success forgets them at once).
FAILURES_REMEMBERED_SECONDS = 24 * 3600


class LoginThrottle:
    """Failure counts and last-attempt times in Redis, keyed by hashed account and address."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str,
        free_failures: int,
        base_delay: float,
        max_delay: float,
    ) -> None:
        self.client = client
        self.prefix = f"{namespace}:login-failures"
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay

    def _key(self, account: str, address: str) -> str:
        # Hashed: the key names no email address.
        digest = hashlib.sha256(f"{account}\0{address}".encode()).hexdigest()
        return f"{self.prefix}:{digest}"

    def delay_after(self, failures: int) -> float:
        """How long a client must wait after its `failures`-th failure (0 while still free)."""
        if failures < self.free_failures:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** (failures - self.free_failures))

    def retry_after(self, account: str, address: str) -> int | None:
        """Whole seconds this client must still wait before trying this account, or None.

        An attempt let through while failures are on record counts as the latest attempt at
        once, so a burst of parallel guesses gets one through, not all of them.
        """
        key = self._key(account, address)
        failures, last = self.client.hmget(key, "failures", "last")
        if failures is None:
            return None
        wait = float(last or 0) + self.delay_after(int(failures)) - time.time()
        if wait > 0:
            return max(1, math.ceil(wait))
        if int(failures) >= self.free_failures:
            self.client.hset(key, "last", time.time())
        return None

    def failed(self, account: str, address: str) -> int:
        """Record a wrong password; returns how many this client has had on this account."""
        key = self._key(account, address)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "failures", 1)
            pipe.hset(key, "last", time.time())
            pipe.expire(key, FAILURES_REMEMBERED_SECONDS)
            failures, *_ = pipe.execute()
        return int(failures)

    def succeeded(self, account: str, address: str) -> None:
        """Forget this client's failures on this account."""
        self.client.delete(self._key(account, address))
