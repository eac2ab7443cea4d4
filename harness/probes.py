"""A guest's service seen from outside: a TCP probe on the timeline.

The guest answers every connection with one line ``<sid> <node> <boot-id> <seq>``. The
probe connects every interval (scaled by the clock's timescale), and records on the
timeline PROBE_UP when the service starts answering, or when a different node or boot
answers, and PROBE_DOWN when it stops. Each observation is stamped with the start of the
attempt that first saw it, like the watchers' views. It keeps the up periods as
``Interval``s, from which ``downtime`` and ``first_up_after`` are computed.

It runs until stopped, however long the guest stays silent; every attempt is bounded by
the connect timeout. The address must be an IP address: no name is ever resolved.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
import time
from dataclasses import dataclass

from harness.clock import Clock
from harness.errors import ConfigError, PvechaosError
from harness.events import ProbeDown, ProbeUp
from harness.timeline import EventKind, Timeline

MAX_LINE = 1024


@dataclass(frozen=True)
class Answer:
    """One line the guest gave: ``<sid> <node> <boot-id> <seq>``."""

    sid: str
    node: str
    boot_id: str
    seq: int


def parse_answer(line: str) -> Answer:
    fields = line.split()
    if len(fields) != 4 or not fields[3].isdigit():
        raise ValueError(f"expected '<sid> <node> <boot-id> <seq>', got {line!r}")
    return Answer(fields[0], fields[1], fields[2], int(fields[3]))


@dataclass(frozen=True)
class Interval:
    """A period during which the service answered from one node and one boot."""

    start: float
    end: float | None  # None: still up at the last attempt (counts as up from then on)
    node: str
    boot_id: str = ""

    def overlap(self, after: float, before: float) -> float:
        end = math.inf if self.end is None else self.end
        return max(0.0, min(end, before) - max(self.start, after))


def validate_address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise ConfigError(f"probe address {address!r} is not an IP address",
                          hint="give the guest's IPv4 or IPv6 address; probes never "
                               "resolve names") from None


class Probe:
    def __init__(self, name: str, address: str, port: int, timeline: Timeline,
                 clock: Clock | None = None, interval_s: float = 0.1,
                 connect_timeout_s: float = 1.0, sid: str | None = None) -> None:
        """``interval_s`` is at timescale 1 (multiplied by the clock's timescale);
        ``connect_timeout_s`` bounds one whole attempt (connect and read), unscaled.
        ``sid``, if given, is the only service id accepted as an answer."""
        self.name = name
        self.address = validate_address(address)
        if not 0 < port < 65536:
            raise ConfigError(f"probe port {port} is out of range", hint="use 1..65535")
        if not interval_s > 0 or not connect_timeout_s > 0:
            raise ConfigError(f"probe interval {interval_s} and timeout {connect_timeout_s} "
                              "must be > 0")
        self.port = port
        self.timeline = timeline
        if clock is not None and clock is not timeline.clock:
            raise ConfigError(f"probe {name}: its clock is not the timeline's clock",
                              hint="pass the run's clock, the one the timeline was made with")
        self.clock = timeline.clock
        self.interval_s = self.clock.scaled(interval_s)
        self.connect_timeout_s = connect_timeout_s
        self.sid = sid
        self._family = (socket.AF_INET6 if ipaddress.ip_address(self.address).version == 6
                        else socket.AF_INET)
        self._lock = threading.Lock()
        self._intervals: list[Interval] = []
        self._current: Answer | None = None  # what answered at the last attempt, if any
        self._up: bool | None = None  # None: no attempt yet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.attempts = 0
        self.last_answer: Answer | None = None
        self.last_error: str | None = None
        self._acked: dict[str, int] = {}  # boot id -> highest write seq the guest reported

    def __repr__(self) -> str:
        return f"Probe({self.name}@{self.address}:{self.port})"

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Probe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"probe-{self.name}")
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop and join; bounded by one attempt plus one interval unless told otherwise."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        bound = timeout_s if timeout_s is not None else (
            self.connect_timeout_s + self.interval_s + 2.0)
        thread.join(bound)
        if thread.is_alive():
            raise PvechaosError(f"probe {self.name} did not stop within {bound:.1f} s")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self.clock.now()
            answer, error = self.attempt()
            if self._stop.is_set():
                break
            self.observe(started, answer, error)
            self._stop.wait(max(0.0, started + self.interval_s - self.clock.now()))

    # -- one attempt -------------------------------------------------------------------
    def attempt(self) -> tuple[Answer | None, str | None]:
        """Connect, read one line; (answer, None) or (None, why not). Bounded."""
        deadline = time.monotonic() + self.connect_timeout_s
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.connect_timeout_s)
            sock.connect((self.address, self.port))
            data = b""
            while b"\n" not in data and len(data) < MAX_LINE:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None, f"no complete line within {self.connect_timeout_s:g} s"
                sock.settimeout(remaining)
                chunk = sock.recv(MAX_LINE - len(data))
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            return None, f"no answer within {self.connect_timeout_s:g} s"
        except OSError as exc:
            return None, exc.strerror or type(exc).__name__
        finally:
            sock.close()
        line = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        if not line:
            return None, "connection closed without an answer"
        try:
            answer = parse_answer(line)
        except ValueError as exc:
            return None, str(exc)
        if self.sid is not None and answer.sid != self.sid:
            return None, f"answered as {answer.sid}, not {self.sid}"
        return answer, None

    # -- the state machine -------------------------------------------------------------
    def observe(self, t: float, answer: Answer | None, error: str | None = None) -> None:
        """Take one attempt's outcome, started at ``t``, onto the timeline and intervals."""
        with self._lock:
            self.attempts += 1
            if answer is not None:
                self.last_answer = answer
                self._acked[answer.boot_id] = max(answer.seq, self._acked.get(answer.boot_id, 0))
                previous = self._current
                if previous is None or (previous.node, previous.boot_id) != (
                        answer.node, answer.boot_id):
                    if previous is not None:
                        self._close(t)
                    self._intervals.append(Interval(t, None, answer.node, answer.boot_id))
                    self.timeline.record(EventKind.PROBE_UP, self.name, ProbeUp(
                        self.name, answer.node, answer.boot_id, answer.sid, answer.seq,
                        previous.node if previous else None,
                        previous.boot_id if previous else None), t=t)
                self._current, self._up = answer, True
            else:
                self.last_error = error
                if self._up is not False:
                    last, initial = self._current, self._up is None
                    self._close(t)
                    self.timeline.record(EventKind.PROBE_DOWN, self.name, ProbeDown(
                        self.name, error or "no answer", initial,
                        last.node if last else None, last.boot_id if last else None), t=t)
                self._current, self._up = None, False

    def acknowledged(self) -> list[tuple[str, int]]:
        """(boot id, seq) of the newest write each boot told a client it had made: every
        one of them must be on the guest's disk (the lost-write invariant)."""
        with self._lock:
            return [(boot, seq) for boot, seq in self._acked.items() if seq > 0]

    def _close(self, t: float) -> None:
        if self._intervals and self._intervals[-1].end is None:
            last = self._intervals[-1]
            self._intervals[-1] = Interval(last.start, t, last.node, last.boot_id)

    # -- what was seen -----------------------------------------------------------------
    @property
    def up(self) -> bool | None:
        """True or False as of the last attempt; None before the first."""
        return self._up

    @property
    def current(self) -> Answer | None:
        return self._current

    def intervals(self) -> list[Interval]:
        with self._lock:
            return list(self._intervals)

    def downtime(self, after: float, before: float | None = None) -> float:
        """Seconds in [after, before] (before: now) not covered by an up period.

        Time before the first attempt counts as down: nothing answered then. A period
        still open counts as up until ``before``."""
        end = self.clock.now() if before is None else before
        if end <= after:
            return 0.0
        up = sum(i.overlap(after, end) for i in self.intervals())
        return max(0.0, (end - after) - up)

    def first_up_after(self, t: float, node: str | None = None) -> float | None:
        """Start of the first up period beginning at or after ``t`` (a PROBE_UP), from
        ``node`` if given; None if there is none yet. An answer already coming before
        ``t`` does not count: this is the moment the service came (back) up."""
        for interval in self.intervals():
            if interval.start >= t and (node is None or interval.node == node):
                return interval.start
        return None
