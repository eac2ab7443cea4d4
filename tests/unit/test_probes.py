"""harness.probes: a TCP probe against an in-process guest on 127.0.0.1.

The fake guest answers like pvemu/guest_process.py (one line per connection,
``<sid> <node> <boot-id> <seq>``) and can be switched off (connection refused), made
silent (accepts, never answers) or made to answer something else. Every wait is bounded
(wait_until); nothing sleeps and hopes.
"""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest

from harness.clock import Clock
from harness.errors import ConfigError
from harness.probes import Answer, Interval, Probe, parse_answer
from harness.timeline import EventKind, Timeline
from harness.timescale import Timescale
from harness.waits import NotYet, wait_until

K = EventKind
FAST = 0.02  # probe interval, seconds
WAIT = 5.0  # bound of every wait


class FakeGuest:
    def __init__(self) -> None:
        self.line = b"ct:100 node1 boot1 1\n"
        self.mode = "answer"  # answer | silent
        self.port = 0
        self.connections = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._held: list[socket.socket] = []

    def answer(self, sid: str, node: str, boot: str, seq: int = 1) -> None:
        self.line = f"{sid} {node} {boot} {seq}\n".encode()

    def on(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def off(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(WAIT)
            assert not self._thread.is_alive()
        if self._listener:
            self._listener.close()
        for conn in self._held:
            conn.close()
        self._held.clear()
        self._listener = self._thread = None

    def _serve(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener], [], [], 0.02)
            if not readable:
                continue
            conn, _ = self._listener.accept()
            self.connections += 1
            if self.mode == "silent":
                self._held.append(conn)
                continue
            with conn:
                conn.sendall(self.line)


@pytest.fixture
def guest():
    g = FakeGuest()
    g.on()
    yield g
    g.off()


@pytest.fixture
def timeline() -> Timeline:
    return Timeline(Clock())


def events(timeline: Timeline, kind: EventKind) -> list:
    return timeline.events(kind, source="ct:100")


def wait_events(timeline: Timeline, kind: EventKind, count: int, what: str) -> list:
    def enough():
        found = events(timeline, kind)
        return found if len(found) >= count else NotYet(f"{len(found)} {kind} events")
    return wait_until(what, enough, timeout_s=WAIT, interval_s=0.01)


# -- answers ---------------------------------------------------------------------------
def test_parses_the_guest_line():
    assert parse_answer("ct:100 node2 3f2a9c 17\n") == Answer("ct:100", "node2", "3f2a9c", 17)
    for bad in ("", "ct:100 node2 3f2a9c", "ct:100 node2 3f2a9c x", "a b c 1 extra"):
        with pytest.raises(ValueError):
            parse_answer(bad)


# -- construction ------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["localhost", "guest.example", "999.1.1.1", ""])
def test_the_address_must_be_an_ip_address(address, timeline):
    with pytest.raises(ConfigError, match="not an IP address"):
        Probe("ct:100", address, 8080, timeline)


def test_ipv6_and_ipv4_addresses_are_accepted(timeline):
    assert Probe("ct:100", "::1", 8080, timeline).address == "::1"
    assert Probe("ct:100", "10.0.0.5", 8080, timeline).address == "10.0.0.5"


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_the_port_must_be_in_range(port, timeline):
    with pytest.raises(ConfigError, match="port"):
        Probe("ct:100", "127.0.0.1", port, timeline)


def test_the_interval_is_scaled_by_the_clocks_timescale():
    timeline = Timeline(Clock(Timescale(0.5)))
    probe = Probe("ct:100", "127.0.0.1", 8080, timeline, timeline.clock, interval_s=0.2)
    assert probe.interval_s == pytest.approx(0.1)


def test_the_clock_must_be_the_timelines(timeline):
    with pytest.raises(ConfigError, match="clock"):
        Probe("ct:100", "127.0.0.1", 8080, timeline, Clock())


# -- the state machine, with made-up times ---------------------------------------------------
def test_events_and_intervals_from_a_sequence_of_attempts(timeline):
    probe = Probe("ct:100", "127.0.0.1", 8080, timeline)
    probe.observe(0.0, None, "connection refused")
    probe.observe(1.0, Answer("ct:100", "n1", "b1", 5))
    probe.observe(2.0, Answer("ct:100", "n1", "b1", 15))  # same node and boot: nothing new
    probe.observe(3.0, Answer("ct:100", "n2", "b2", 16))  # moved without a gap
    probe.observe(4.0, Answer("ct:100", "n2", "b2", 26))
    probe.observe(5.0, None, "timed out")
    probe.observe(6.0, None, "timed out")  # still down: nothing new
    probe.observe(8.0, Answer("ct:100", "n2", "b3", 40))  # restarted on the same node
    seen = [(e.t, e.kind, e.payload.node, e.payload.boot_id)
            for e in timeline.events(source="ct:100")]
    assert seen == [(0.0, K.PROBE_DOWN, None, None), (1.0, K.PROBE_UP, "n1", "b1"),
                    (3.0, K.PROBE_UP, "n2", "b2"), (5.0, K.PROBE_DOWN, "n2", "b2"),
                    (8.0, K.PROBE_UP, "n2", "b3")]
    first_down, moved, down = (timeline.events(source="ct:100")[i].payload for i in (0, 2, 3))
    assert first_down.initial is True and first_down.reason == "connection refused"
    assert moved.previous_node == "n1" and moved.guest == "ct:100"
    assert down.initial is False and down.reason == "timed out"
    assert probe.intervals() == [Interval(1.0, 3.0, "n1", "b1"), Interval(3.0, 5.0, "n2", "b2"),
                                 Interval(8.0, None, "n2", "b3")]
    assert probe.attempts == 8 and probe.up is True
    assert probe.current == Answer("ct:100", "n2", "b3", 40)


def test_downtime_and_first_up_after(timeline):
    probe = Probe("ct:100", "127.0.0.1", 8080, timeline)
    for t, answer in [(1.0, Answer("s", "n1", "b1", 1)), (3.0, Answer("s", "n2", "b2", 2)),
                      (5.0, None), (8.0, Answer("s", "n2", "b3", 3))]:
        probe.observe(t, answer)
    assert probe.downtime(0.0, 10.0) == pytest.approx(10 - (2 + 2 + 2))
    assert probe.downtime(2.0, 9.0) == pytest.approx(7 - (1 + 2 + 1))
    assert probe.downtime(5.0, 8.0) == pytest.approx(3.0)
    assert probe.downtime(8.5, 100.0) == 0.0  # an open period counts as up
    assert probe.downtime(4.0, 4.0) == 0.0
    assert probe.first_up_after(0.0) == 1.0
    assert probe.first_up_after(1.5) == 3.0
    assert probe.first_up_after(3.0) == 3.0
    assert probe.first_up_after(4.0, node="n1") is None
    assert probe.first_up_after(4.0, node="n2") == 8.0
    assert probe.first_up_after(8.1) is None


# -- live, against the fake guest ------------------------------------------------------
def test_up_then_a_move_to_another_node_without_a_gap(guest, timeline):
    with Probe("ct:100", "127.0.0.1", guest.port, timeline, interval_s=FAST) as probe:
        [up] = wait_events(timeline, K.PROBE_UP, 1, "the probe to see the guest")
        assert (up.payload.guest, up.payload.node, up.payload.boot_id) == (
            "ct:100", "node1", "boot1")
        guest.answer("ct:100", "node2", "boot2")
        ups = wait_events(timeline, K.PROBE_UP, 2, "the probe to see the move")
        assert ups[1].payload.node == "node2" and ups[1].payload.previous_node == "node1"
        assert events(timeline, K.PROBE_DOWN) == []
        first, second = probe.intervals()
        assert (first.node, first.end, second.node, second.end) == (
            "node1", ups[1].t, "node2", None)
        assert probe.first_up_after(up.t + 1e-6, node="node2") == ups[1].t
    assert not probe.running


def test_down_while_switched_off_then_up_again(guest, timeline):
    probe = Probe("ct:100", "127.0.0.1", guest.port, timeline, interval_s=FAST,
                  connect_timeout_s=0.5)
    with probe:
        wait_events(timeline, K.PROBE_UP, 1, "the guest to answer")
        guest.off()
        [down] = wait_events(timeline, K.PROBE_DOWN, 1, "the probe to see it stop")
        # refused; or reset/closed if the attempt was queued when the listener closed
        assert any(word in down.payload.reason.lower() for word in ("refused", "reset",
                                                                     "closed without"))
        assert (down.payload.node, down.payload.initial) == ("node1", False)
        # failures go on and on: the probe keeps trying, and records no second PROBE_DOWN
        tries = probe.attempts
        wait_until("ten more failed attempts", lambda: probe.attempts >= tries + 10,
                   timeout_s=WAIT, interval_s=0.01)
        assert probe.running and probe.up is False
        assert len(events(timeline, K.PROBE_DOWN)) == 1
        guest.on()
        ups = wait_events(timeline, K.PROBE_UP, 2, "the guest to answer again")
        back = ups[1].t
    assert probe.intervals()[0].end == down.t
    assert probe.first_up_after(down.t) == back
    assert probe.downtime(down.t, back) == pytest.approx(back - down.t)
    assert probe.downtime(ups[0].t, back + 1) == pytest.approx(back - down.t)


def test_a_silent_guest_is_down_and_each_attempt_is_bounded(guest, timeline):
    guest.mode = "silent"
    probe = Probe("ct:100", "127.0.0.1", guest.port, timeline, interval_s=FAST,
                  connect_timeout_s=0.2)
    probe.start()
    [down] = wait_events(timeline, K.PROBE_DOWN, 1, "a silent guest to count as down")
    assert "within 0.2 s" in down.payload.reason and down.payload.initial is True
    wait_until("a second silent attempt", lambda: guest.connections >= 2, timeout_s=WAIT,
               interval_s=0.01)
    started = time.monotonic()
    probe.stop()
    assert time.monotonic() - started < 1.0  # at most one attempt's timeout
    assert events(timeline, K.PROBE_UP) == []
    assert probe.intervals() == []


@pytest.mark.parametrize(("line", "reason"), [
    (b"ct:101 node1 boot1 1\n", "answered as ct:101"),
    (b"hello\n", "expected '<sid> <node> <boot-id> <seq>'"),
    (b"", "closed without an answer")])
def test_a_wrong_answer_is_not_the_guest(guest, timeline, line, reason):
    guest.line = line
    with Probe("ct:100", "127.0.0.1", guest.port, timeline, interval_s=FAST, sid="ct:100"):
        [down] = wait_events(timeline, K.PROBE_DOWN, 1, "a wrong answer to count as down")
    assert reason in down.payload.reason
    assert events(timeline, K.PROBE_UP) == []


def test_stop_without_start_and_twice_is_harmless(timeline):
    probe = Probe("ct:100", "127.0.0.1", 8080, timeline)
    probe.stop()
    probe.stop()
    assert not probe.running


def test_acknowledged_keeps_the_newest_write_of_each_boot():
    from harness.clock import Clock
    from harness.probes import Answer, Probe
    from harness.timeline import Timeline

    probe = Probe("ct:100", "127.0.0.1", 9, Timeline(Clock()))
    for t, boot, seq in ((1.0, "a", 3), (1.1, "a", 7), (1.2, "a", 5), (2.0, "b", 0),
                         (2.1, "b", 2)):
        probe.observe(t, Answer("ct:100", "node1", boot, seq))
    assert sorted(probe.acknowledged()) == [("a", 7), ("b", 2)]
