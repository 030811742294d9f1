"""The demo's login check: constant-time password comparison, a delay after each wrong try and a lockout.

Gradio's `auth` callable sees only (username, password), not the client's address, so failures
are counted per user name (lower-cased): after `max_failures` wrong passwords within `lockout_s`
that name is refused, even with the right password, until the oldest failure is `lockout_s` old.
Every refusal waits `delay_s` first, asynchronously, so other users are not held up.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable

from limis.demo.config import Credentials

logger = logging.getLogger(__name__)
MAX_FAILURES = 5
LOCKOUT_S = 300.0
DELAY_S = 1.0
MAX_TRACKED_NAMES = 10_000  # bounds memory when someone tries many user names


class LoginGuard:
    """Checks demo credentials; pass `guard.check` (an async function) to `Blocks.launch(auth=...)`."""

    def __init__(self, credentials: Credentials, max_failures: int = MAX_FAILURES, lockout_s: float = LOCKOUT_S,
                 delay_s: float = DELAY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._passwords = dict(credentials)
        self.max_failures, self.lockout_s, self.delay_s = max_failures, lockout_s, delay_s
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def locked(self, username: str) -> bool:
        """Whether this user name has had `max_failures` wrong passwords within the last `lockout_s`."""
        return len(self._recent(username.strip().lower())) >= self.max_failures

    async def check(self, username: str, password: str) -> bool:
        """True for a right password of a user name that is not locked out; else False after `delay_s`."""
        key = username.strip().lower()
        if not self.locked(key) and self._matches(username, password):
            self._failures.pop(key, None)
            return True
        if not self.locked(key):
            self._record(key)
            if self.locked(key):
                logger.warning("LIMIS demo login: %d wrong passwords for one user name; locked for %.0f s",
                               self.max_failures, self.lockout_s)
        await asyncio.sleep(self.delay_s)
        return False

    def _matches(self, username: str, password: str) -> bool:
        expected = self._passwords.get(username.strip())
        # Compare against something even for unknown names, so timing does not tell which names exist.
        same = hmac.compare_digest(password.encode(), (expected if expected is not None else password + "x").encode())
        return expected is not None and same

    def _recent(self, key: str) -> list[float]:
        now = self._clock()
        recent = [t for t in self._failures.get(key, ()) if now - t < self.lockout_s]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def _record(self, key: str) -> None:
        if len(self._failures) >= MAX_TRACKED_NAMES:
            self._failures.pop(next(iter(self._failures)))  # the name tracked longest
        self._failures.setdefault(key, []).append(self._clock())
