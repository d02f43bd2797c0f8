"""Connection-rate throttling: ZooKeeper 3.6's ``BlueThrottle``, for the client port.

Theory of operation
-------------------
A reconnect storm (every client of a failed server arriving at once) is met by a
token bucket, exactly as ZooKeeper's ``BlueThrottle`` does it: the bucket starts
full with ``connectionMaxTokens`` tokens, every session request (a
``ConnectRequest``, new session or reconnect) takes one, and
``connectionTokenFillCount`` tokens come back every ``connectionTokenFillTime``
milliseconds, up to the maximum.  A request that finds the bucket empty is
refused: the client port closes that connection without an answer (ZooKeeper's
``ClientCnxnLimitException``), and the client retries, typically against another
server.  ``connectionMaxTokens=0`` (the default) turns throttling off.

With ``connectionFreezeTime`` other than -1 the bucket also drops requests at
random (the BLUE queue-management algorithm): every ``connectionFreezeTime`` ms
the drop probability rises by ``connectionDropIncrease`` if the bucket is empty
and falls by ``connectionDropDecrease`` if its deficit is at most
``connectionMaxTokens * connectionDecreaseRatio``.

ZooKeeper's optional session weights (``zookeeper.connection_throttle_weight_enabled``)
are not implemented: every request costs one token, ZooKeeper's default.

Time is trio's clock (milliseconds), so a ``MockClock`` drives the bucket in tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import trio

from trizab import config as cfg

__all__ = ["ConnectionThrottle"]


def _now_ms() -> float:
    return trio.current_time() * 1000.0


class ConnectionThrottle:
    """The token bucket (and optional BLUE dropping) that admits session requests."""

    def __init__(
        self,
        config: cfg.ServerConfig,
        *,
        now_ms: Callable[[], float] = _now_ms,
        rng: random.Random | None = None,
    ) -> None:
        self.max_tokens = config.connection_max_tokens
        self.fill_time = config.connection_token_fill_time
        self.fill_count = config.connection_token_fill_count
        self.freeze_time = config.connection_freeze_time
        self.drop_increase = config.connection_drop_increase
        self.drop_decrease = config.connection_drop_decrease
        self.decrease_point = config.connection_decrease_ratio
        self.tokens = self.max_tokens
        self.drop = 0.0
        self.refused = 0
        self._now_ms = now_ms
        self._rng = rng or random.Random()
        self._last_fill: float | None = None
        self._last_freeze: float | None = None

    @property
    def enabled(self) -> bool:
        return self.max_tokens > 0

    def admit(self, need: int = 1) -> bool:
        """Take ``need`` tokens for one session request; False: refuse it (BlueThrottle.checkLimit)."""
        if self.max_tokens == 0:
            return True
        now = self._now_ms()
        if self._last_fill is None:
            self._last_fill = self._last_freeze = now
        elapsed = now - self._last_fill
        if elapsed > self.fill_time:
            refill = int(elapsed * self.fill_count // self.fill_time)
            self.tokens = min(self.tokens + refill, self.max_tokens)
            self._last_fill = now
        if self.freeze_time != -1 and not self._blue(now):
            self.refused += 1
            return False
        if self.tokens < need:
            self.refused += 1
            return False
        self.tokens -= need
        return True

    def _blue(self, now: float) -> bool:
        assert self._last_freeze is not None
        deficit = self.max_tokens - self.tokens
        if now - self._last_freeze > self.freeze_time:
            if deficit == self.max_tokens and self.drop < 1:
                self.drop = min(self.drop + self.drop_increase, 1.0)
            elif deficit <= round(self.max_tokens * self.decrease_point) and self.drop > 0:
                self.drop = max(self.drop - self.drop_decrease, 0.0)
            self._last_freeze = now
        return not self._rng.random() < self.drop
