"""The NFQUEUE delayer delays real packets, and its end (or its death) really ends the delay.

No lab: two network namespaces of our own joined by a veth pair (198.18.200.1 and .2, in
nothing but these namespaces), an echo server on UDP 5405 (and, as a control, 6000) in
one, and harness/netdelay.py's own apply and undo commands run in the other, as they
would run on a node. The round trip to 5405 grows by the one-way delay (only the outgoing
packets of the delayed side are queued; the replies are not); the control port does not.
Figures are printed (``-s`` shows them).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time

import pytest

from harness import netdelay

A_ADDR, B_ADDR = "198.18.200.1", "198.18.200.2"
ECHO = f"""
import select, socket, time
socks = []
for port in (5405, 6000):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("{B_ADDR}", port))
    socks.append(s)
print("listening", flush=True)
end = time.monotonic() + 120  # bounded: the test takes far less
while time.monotonic() < end:
    for s in select.select(socks, [], [], 0.5)[0]:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)
"""
PROBE = """
import json, socket, sys, time
port, count, burst = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "burst"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
dest = ("B_ADDR", port)
if burst:  # send all, then read the echoes in the order they come back
    for i in range(count):
        s.sendto(str(i).encode(), dest)
    order = []
    try:
        while len(order) < count:
            order.append(int(s.recv(64)))
    except socket.timeout:
        pass
    print(json.dumps(order))
else:  # one at a time: round trip per datagram (None: no answer within 1 s)
    rtts = []
    for i in range(count):
        t = time.monotonic()
        s.sendto(str(i).encode(), dest)
        try:
            while int(s.recv(64)) != i:
                pass
            rtts.append((time.monotonic() - t) * 1000)
        except socket.timeout:
            rtts.append(None)
    print(json.dumps(rtts))
""".replace("B_ADDR", B_ADDR)


class Pair:
    """Two namespaces joined by a veth pair; commands run in side A (the delayed node)."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.a, self.b = f"pvcnd-a-{tag}", f"pvcnd-b-{tag}"
        self.va, self.vb = f"pvcnda{tag}", f"pvcndb{tag}"
        self.echo: subprocess.Popen | None = None

    def up(self) -> None:
        for cmd in (["ip", "netns", "add", self.a], ["ip", "netns", "add", self.b],
                    ["ip", "link", "add", self.va, "netns", self.a, "type", "veth",
                     "peer", "name", self.vb, "netns", self.b],
                    ["ip", "-n", self.a, "addr", "add", f"{A_ADDR}/24", "dev", self.va],
                    ["ip", "-n", self.b, "addr", "add", f"{B_ADDR}/24", "dev", self.vb],
                    ["ip", "-n", self.a, "link", "set", self.va, "up"],
                    ["ip", "-n", self.b, "link", "set", self.vb, "up"],
                    ["ip", "-n", self.a, "link", "set", "lo", "up"],
                    ["ip", "-n", self.b, "link", "set", "lo", "up"]):
            subprocess.run(cmd, check=True, capture_output=True, timeout=10)
        self.echo = subprocess.Popen(["ip", "netns", "exec", self.b, "python3", "-c", ECHO],
                                     stdout=subprocess.PIPE, text=True)
        assert self.echo.stdout.readline().strip() == "listening"

    def down(self) -> None:
        if self.echo is not None:
            self.echo.kill()
            self.echo.wait(timeout=5)
        for ns in (self.a, self.b):  # deleting a namespace kills its veth end, and the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)

    def sh(self, command: str, timeout_s: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.a, "bash", "-c", command],
                              capture_output=True, text=True, timeout=timeout_s)

    def probe(self, port: int = 5405, count: int = 10, burst: bool = False) -> list:
        done = subprocess.run(["ip", "netns", "exec", self.a, "python3", "-c", PROBE,
                               str(port), str(count), "burst" if burst else "rtt"],
                              capture_output=True, text=True, timeout=30, check=True)
        return json.loads(done.stdout)

    def rules(self) -> str:
        return self.sh("iptables -t mangle -S; ip6tables -t mangle -S").stdout


@pytest.fixture
def pair(tmp_path, monkeypatch):
    # the namespaces share this host's /run: keep the pid file and log in the test's dir
    monkeypatch.setattr(netdelay, "PID_FILE", str(tmp_path / "netdelay.pid"))
    monkeypatch.setattr(netdelay, "LOG_FILE", str(tmp_path / "netdelay.log"))
    the_pair = Pair()
    try:
        the_pair.up()
        yield the_pair
    finally:
        the_pair.down()
    assert not os.path.exists(f"/run/netns/{the_pair.a}")


def applied(pair: Pair, **spec: object):
    command = netdelay.delay_command(netdelay.DelaySpec(**{"max_seconds": 60, **spec}))
    done = pair.sh(command.apply)
    assert done.returncode == 0, done.stderr
    return command


def median(rtts: list) -> float:
    assert None not in rtts, f"lost datagrams: {rtts}"
    return statistics.median(rtts)


def log_events(pair: Pair) -> dict:
    return {e["event"]: e for e in netdelay.parse_log(pair.sh(netdelay.stats_command()).stdout)}


def test_delay_adds_to_the_round_trip_and_undo_removes_delay_rule_and_delayer(pair):
    before = median(pair.probe())
    command = applied(pair, delay_ms=50)
    assert netdelay.CHAIN in pair.rules()
    delayed, control = pair.probe(count=20), median(pair.probe(port=6000))
    pid = int(open(netdelay.PID_FILE).read())
    done = pair.sh(command.undo)
    assert done.returncode == 0, done.stderr
    after = median(pair.probe())
    print(f"\nrtt ms: before {before:.2f}, delay 50 ms: median {median(delayed):.2f} "
          f"min {min(delayed):.2f} max {max(delayed):.2f}, port 6000 {control:.2f}, "
          f"after undo {after:.2f}")
    assert before < 10 and min(delayed) >= before + 45 and median(delayed) < before + 80
    assert control < 10 and after < 10
    assert netdelay.CHAIN not in pair.rules()
    assert not os.path.exists(f"/proc/{pid}") and not os.path.exists(netdelay.PID_FILE)
    events = log_events(pair)
    print(f"delayer exit: {events['exit']}")
    assert events["exit"]["reason"] == f"signal {int(signal.SIGTERM)}"
    assert events["exit"]["queued"] >= 20 and events["exit"]["lost"] == 0
    assert events["exit"]["ports"] and all(p.endswith(">5405")
                                           for p in events["exit"]["ports"])


def test_jitter_spreads_the_delay_and_reorders_a_burst(pair):
    command = applied(pair, delay_ms=50, jitter_ms=20, seed=1)
    try:
        rtts = pair.probe(count=30)
        order = pair.probe(count=40, burst=True)
    finally:
        pair.sh(command.undo)
    print(f"\njitter 50±20 ms: rtt min {min(rtts):.2f} median {median(rtts):.2f} "
          f"max {max(rtts):.2f}; burst of 40 came back as {order}")
    assert min(rtts) >= 29 and max(rtts) - min(rtts) > 15 and max(rtts) < 71 + 30
    assert sorted(order) == list(range(40)) and order != list(range(40))


def test_loss_drops_about_the_share_asked(pair):
    command = applied(pair, delay_ms=1, loss_percent=30, seed=2)
    try:
        rtts = pair.probe(count=100, burst=True)
    finally:
        pair.sh(command.undo)
    print(f"\nloss 30 %: {100 - len(rtts)} of 100 lost")
    assert 12 <= 100 - len(rtts) <= 50


def test_a_killed_delayer_does_not_black_hole_traffic(pair):
    command = applied(pair, delay_ms=50)
    try:
        assert min(pair.probe(count=3)) >= 45
        pid = int(open(netdelay.PID_FILE).read())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert netdelay.CHAIN in pair.rules()  # the rule stays; --queue-bypass lets all pass
        rtts = pair.probe(count=20)
        print(f"\nafter SIGKILL, rule still in place: rtt median {median(rtts):.2f} ms")
        assert median(rtts) < 10
    finally:
        done = pair.sh(command.undo)
    assert done.returncode == 0 and netdelay.CHAIN not in pair.rules()


def test_the_delayer_ends_by_itself_and_the_sweep_leaves_nothing(pair):
    applied(pair, delay_ms=50, max_seconds=1.5)
    pid = int(open(netdelay.PID_FILE).read())
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}")
    assert log_events(pair)["exit"]["reason"] == "max-seconds"
    assert median(pair.probe(count=5)) < 10
    done = pair.sh(netdelay.SWEEPS["netdelay"])
    assert done.returncode == 0 and netdelay.CHAIN not in pair.rules()
    assert pair.sh(netdelay.SWEEPS["netdelay"]).returncode == 0  # again: nothing there


def test_a_second_delay_is_refused_while_one_is_in_force(pair):
    command = applied(pair, delay_ms=5)
    try:
        again = netdelay.delay_command(netdelay.DelaySpec(delay_ms=7, max_seconds=5))
        done = pair.sh(again.apply)
        assert done.returncode == 3 and "already in force" in done.stderr
    finally:
        pair.sh(command.undo)


def test_stopping_releases_the_packets_it_holds_at_once(pair):
    command = applied(pair, delay_ms=5000)
    started = time.monotonic()
    probe = subprocess.Popen(["ip", "netns", "exec", pair.a, "python3", "-c", PROBE, "5405",
                              "10", "burst"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        assert pair.sh(command.undo).returncode == 0
        order = json.loads(probe.communicate(timeout=10)[0])
    finally:
        probe.kill()
        probe.wait(timeout=5)
    took = time.monotonic() - started
    exit_event = log_events(pair)["exit"]
    print(f"\nheld for 5 s, stopped after 0.3 s: {len(order)} of 10 echoed, {took:.2f} s "
          f"in all; released at exit: {exit_event['released_at_exit']}")
    assert sorted(order) == list(range(10)) and took < 3
    assert exit_event["released_at_exit"] == 10


def test_peers_limit_the_delay_to_their_addresses(pair):
    command = applied(pair, delay_ms=50, peers=("198.18.200.3",))
    try:
        other = median(pair.probe(count=5))
    finally:
        pair.sh(command.undo)
    command = applied(pair, delay_ms=50, peers=(B_ADDR,))
    try:
        to_peer = median(pair.probe(count=5))
    finally:
        pair.sh(command.undo)
    print(f"\ndelay to 198.18.200.3 only: rtt to .2 {other:.2f} ms; to .2: {to_peer:.2f} ms")
    assert other < 10 and to_peer >= 45


def test_reorder_sends_a_share_at_once(pair):
    command = applied(pair, delay_ms=300, reorder_percent=50, seed=3)
    try:
        rtts = pair.probe(count=40)  # one at a time: each is either at once or 300 ms late
    finally:
        pair.sh(command.undo)
    fast = sum(1 for r in rtts if r < 50)
    print(f"\nreorder 50 % with delay 300 ms: {fast} of 40 at once, the rest "
          f"{min(r for r in rtts if r >= 50):.1f}-{max(rtts):.1f} ms")
    assert 10 <= fast <= 30 and all(r < 50 or r >= 295 for r in rtts)
