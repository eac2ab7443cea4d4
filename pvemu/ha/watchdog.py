"""watchdog-mux as pure logic (pve-model.md §2, §7.6; `src/watchdog-mux.c`).

The mux multiplexes one hardware/softdog device for its clients (the CRM and the LRM).
Every tick (1 s) it feeds the device unless some client is stale (no update for more
than 60 s) or some client went away without the magic close 'V' (a crash). The device
resets the node 10 s after the last feed. With no clients the device is not armed.

The lead wraps this in a daemon with a unix socket; the simulator calls it directly.
All times are seconds on the node's own clock; durations come from `Timing`.
"""

from __future__ import annotations

from pvemu.timing import Timing


class WatchdogMux:
    """Clients open/update/close; `tick(now)` feeds the device; `expired(now)` resets."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self._clients: dict[int, float] = {}  # id -> last update
        self._next_id = 1
        self._last_feed: float | None = None  # None: device not armed
        self._crashed = False  # a client vanished without 'V': never feed again

    # -- clients ---------------------------------------------------------------
    def open(self, now: float) -> int:
        cid = self._next_id
        self._next_id += 1
        self._clients[cid] = now
        if self._last_feed is None:
            self._last_feed = now  # opening arms the device
        return cid

    def update(self, cid: int, now: float) -> None:
        if cid in self._clients:
            self._clients[cid] = now

    def close(self, cid: int) -> None:
        """Graceful close with the magic 'V': the mux forgets the client."""
        self._clients.pop(cid, None)
        if not self._clients and not self._crashed:
            self._last_feed = None  # nobody left: the device is disarmed

    def disconnect(self, cid: int) -> None:
        """The client died without 'V' (killed process): feeding stops at once."""
        if self._clients.pop(cid, None) is not None:
            self._crashed = True

    # -- device ----------------------------------------------------------------
    @property
    def armed(self) -> bool:
        return self._last_feed is not None

    @property
    def clients(self) -> dict[int, float]:
        return dict(self._clients)

    def should_feed(self, now: float) -> bool:
        if self._crashed:
            return False
        limit = self.timing.watchdog_client_timeout
        return all(now - last <= limit for last in self._clients.values())

    def tick(self, now: float) -> bool:
        """One mux loop (every `timing.watchdog_tick`). True while the device is fed."""
        if not self.armed:
            return True
        if self.expired(now):
            return False
        if self.should_feed(now):
            self._last_feed = now
            return True
        return False

    def expired(self, now: float) -> bool:
        """The device timeout passed since the last feed: the node resets."""
        if self._last_feed is None:
            return False
        return now - self._last_feed >= self.timing.watchdog_device_timeout
