"""The NFQUEUE delay fallback (harness/netdelay.py, harness/node_scripts/netdelay.py)
without a kernel: the commands it sends, run by a real shell against fake python3 and
iptables, and the delayer's own scheduling and netlink encoding.

tests/integration/test_netdelay.py shows the real thing delays real packets.
"""

from __future__ import annotations

import importlib.util
import os
import random
import stat
import struct
import subprocess

import pytest

from harness import netdelay
from harness.errors import PvechaosError
from harness.node_command import SWEEPS


def load_script():
    spec = importlib.util.spec_from_file_location("node_netdelay", netdelay.SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = load_script()


def test_the_command_is_a_netem_fault_with_a_readable_detail():
    cmd = netdelay.delay_command(netdelay.DelaySpec(delay_ms=100, jitter_ms=10,
                                                    max_seconds=60))
    assert cmd.fault == "netem"
    assert cmd.detail == "delay 100ms ±10ms on udp 5405-5412 out (nfqueue)"


def test_the_script_travels_whole_in_a_quoted_heredoc():
    cmd = netdelay.delay_command(netdelay.DelaySpec(delay_ms=5, max_seconds=9))
    opener = f"<<'{netdelay.HEREDOC_END}' &\n"
    body = cmd.apply.split(opener, 1)[1].split(f"\n{netdelay.HEREDOC_END}\n", 1)[0]
    assert body == netdelay.SCRIPT.read_text().rstrip()


def test_the_delayer_is_bound_before_the_rule_and_the_rule_goes_before_the_delayer():
    cmd = netdelay.delay_command(netdelay.DelaySpec(delay_ms=5, max_seconds=9))
    assert cmd.apply.index("python3 -") < cmd.apply.index(f"-N {netdelay.CHAIN}")
    assert cmd.undo.index(f"-D OUTPUT -j {netdelay.CHAIN}") < cmd.undo.index("kill -TERM")
    assert "--queue-bypass" in cmd.apply and "-t mangle" in cmd.apply
    assert "--dport 5405:5412" in cmd.apply
    assert SWEEPS["netdelay"].startswith("( ") and "kill -TERM" in SWEEPS["netdelay"]


@pytest.mark.parametrize("bad, words", [
    ({"duplicate_percent": 1}, "duplication needs tc netem"),
    ({"distribution": "pareto"}, "unknown jitter distribution"),
    ({"max_seconds": 0}, "max_seconds"),
    ({"loss_percent": 101}, "loss"),
    ({"delay_ms": -1}, "out of range"),
    ({"rate_kbit": 100}, "rate limiting needs tc netem"),
    ({"peers": ("node2; reboot",)}, "not an IP address"),
])
def test_what_the_delayer_cannot_do_is_refused_before_anything_runs(bad, words):
    spec = netdelay.DelaySpec(**{"delay_ms": 10, "max_seconds": 5, **bad})
    with pytest.raises(PvechaosError, match=words):
        netdelay.delay_command(spec)


def test_peers_limit_the_rule_to_their_addresses_per_family():
    four = netdelay.delay_command(netdelay.DelaySpec(
        delay_ms=5, max_seconds=9, peers=("198.18.1.2", "198.18.1.3")))
    rules = four.apply.split(netdelay.HEREDOC_END)[-1]
    assert rules.count("-A pvechaos_delay -d 198.18.1.") == 2 and "ip6tables" not in rules
    assert four.detail.endswith("to 198.18.1.2, 198.18.1.3 (nfqueue)")
    six = netdelay.delay_command(netdelay.DelaySpec(delay_ms=5, max_seconds=9,
                                                    peers=("fd00::2",)))
    rules = six.apply.split(netdelay.HEREDOC_END)[-1]
    assert "ip6tables -w 5 -t mangle -A pvechaos_delay -d fd00::2 " in rules
    assert "iptables -w 5 -t mangle -N" not in rules.replace("ip6tables", "")


def test_the_script_itself_refuses_duplication_and_needs_a_bound():
    with pytest.raises(SystemExit):
        script.parse_args(["--delay-ms", "5", "--max-seconds", "5",
                           "--duplicate-percent", "1"])
    with pytest.raises(SystemExit):
        script.parse_args(["--delay-ms", "5"])


def test_the_builder_and_the_script_agree_on_the_arguments():
    spec = netdelay.DelaySpec(delay_ms=12.5, jitter_ms=3, distribution="normal",
                              loss_percent=2, reorder_percent=5, seed=7, max_seconds=30)
    args = script.parse_args(spec.args())
    assert (args.delay_ms, args.jitter_ms, args.distribution, args.loss_percent,
            args.reorder_percent, args.seed, args.max_seconds, args.queue_num, args.pid_file,
            args.tag) == (12.5, 3, "normal", 2, 5, 7, 30, netdelay.QUEUE_NUM,
                          netdelay.PID_FILE, netdelay.TAG)


# -- the shell commands, run by a real shell against fakes ------------------------------

FAKE_PYTHON = """\
#!/bin/sh
# fake python3: keep the script from stdin and the arguments, then act as the delayer
cat > "$FAKES/script.py"
echo "$@" > "$FAKES/args"
if [ -e "$FAKES/fail" ]; then echo '{"event": "error", "error": "EPERM"}'; exit 2; fi
pidfile=$(echo "$@" | sed 's/.*--pid-file \\([^ ]*\\).*/\\1/')
trap 'echo TERM >> "$FAKES/calls"; exit 0' TERM
echo $$ > "$pidfile"
i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
"""

FAKE_IPTABLES = """\
#!/bin/sh
echo "$(basename $0) $*" >> "$FAKES/calls"
case "$*" in *" -S "*) [ -e "$FAKES/chain" ]; exit $?;; esac
case "$*" in *" -D "*) exit 1;; esac
exit 0
"""


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("python3", FAKE_PYTHON), ("iptables", FAKE_IPTABLES),
                       ("ip6tables", FAKE_IPTABLES)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setattr(netdelay, "PID_FILE", str(tmp_path / "nd.pid"))
    monkeypatch.setattr(netdelay, "LOG_FILE", str(tmp_path / "nd.log"))
    monkeypatch.setattr(netdelay, "READY_WAIT", (30, 0.1))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKES": str(tmp_path)}

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], env=env, capture_output=True,
                              text=True, timeout=20)
    return tmp_path, run


def calls(tmp_path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_apply_starts_the_delayer_then_adds_the_rule_and_undo_reverses_it(fakes):
    tmp_path, run = fakes
    cmd = netdelay.delay_command(netdelay.DelaySpec(delay_ms=100, jitter_ms=10,
                                                    max_seconds=60, seed=3))
    done = run(cmd.apply)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "script.py").read_text() == netdelay.SCRIPT.read_text().rstrip() + "\n"
    assert (tmp_path / "args").read_text().split() == ["-", *cmd_args(cmd)]
    chain, queue = netdelay.CHAIN, netdelay.QUEUE_NUM
    for ipt in ("iptables", "ip6tables"):
        assert f"{ipt} -w 5 -t mangle -N {chain}" in calls(tmp_path)
        assert f"{ipt} -w 5 -t mangle -A {chain} -p udp --dport 5405:5412 -j NFQUEUE " \
               f"--queue-num {queue} --queue-bypass" in calls(tmp_path)
        assert f"{ipt} -w 5 -t mangle -I OUTPUT 1 -j {chain}" in calls(tmp_path)
    assert (tmp_path / "nd.pid").exists()
    (tmp_path / "calls").write_text("")
    undone = run(cmd.undo)
    assert undone.returncode == 0, undone.stderr
    seen = calls(tmp_path)
    assert seen[0] == f"iptables -w 5 -t mangle -D OUTPUT -j {chain}"
    assert f"iptables -w 5 -t mangle -X {chain}" in seen
    assert seen[-1] == "TERM" and not (tmp_path / "nd.pid").exists()


def cmd_args(cmd) -> list[str]:
    line = next(ln for ln in cmd.apply.splitlines() if ln.startswith("setsid nohup"))
    return line.split("python3 - ", 1)[1].split(" >", 1)[0].split()


def test_apply_refuses_when_a_delay_is_already_in_force(fakes):
    tmp_path, run = fakes
    (tmp_path / "chain").write_text("")
    done = run(netdelay.delay_command(netdelay.DelaySpec(delay_ms=1, max_seconds=5)).apply)
    assert done.returncode == 3 and "already in force" in done.stderr
    assert not (tmp_path / "script.py").exists()


def test_apply_fails_with_the_delayers_own_words_when_it_cannot_bind(fakes):
    tmp_path, run = fakes
    (tmp_path / "fail").write_text("")
    done = run(netdelay.delay_command(netdelay.DelaySpec(delay_ms=1, max_seconds=5)).apply)
    assert done.returncode == 5
    assert "did not start" in done.stderr and "EPERM" in done.stderr
    assert not any("-N" in c for c in calls(tmp_path))


def test_undo_and_sweep_succeed_when_nothing_is_there(fakes):
    tmp_path, run = fakes
    assert run(netdelay.delay_command(
        netdelay.DelaySpec(delay_ms=1, max_seconds=5)).undo).returncode == 0
    assert run(SWEEPS["netdelay"] + "; echo after").stdout.strip() == "after"


def test_a_stale_pid_file_of_another_process_is_not_killed(fakes):
    tmp_path, run = fakes
    other = subprocess.Popen(["sleep", "5"])
    try:
        (tmp_path / "nd.pid").write_text(f"{other.pid}\n")
        assert run(netdelay.delay_command(
            netdelay.DelaySpec(delay_ms=1, max_seconds=5)).undo).returncode == 0
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_parse_log_reads_the_delayers_json_lines():
    text = 'junk\n{"event": "ready", "pid": 3}\n{"event": "exit", "queued": 4}\n{bad\n'
    assert [e["event"] for e in netdelay.parse_log(text)] == ["ready", "exit"]


# -- the delayer's scheduling and wire format --------------------------------------------

class RecordingQueue:
    def __init__(self):
        self.verdicts = []

    def verdict(self, packet_id, verdict):
        self.verdicts.append((packet_id, verdict))


def delayer(**options):
    argv = ["--delay-ms", "50", "--max-seconds", "5", "--seed", "1"]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return script.Delayer(script.parse_args(argv))


def test_without_jitter_packets_leave_in_order_after_the_delay():
    d, queue = delayer(), RecordingQueue()
    d.take(queue, [(1, b""), (2, b"")], now=10.0)
    d.take(queue, [(3, b"")], now=10.01)
    d.release_due(queue, 10.049)
    assert queue.verdicts == []
    d.release_due(queue, 10.0601)
    assert queue.verdicts == [(i, script.NF_ACCEPT) for i in (1, 2, 3)]


def test_jitter_spreads_the_delay_within_its_bounds_and_reorders():
    d = delayer(jitter_ms=20)
    samples = [d.sample_ms() for _ in range(2000)]
    assert 30 <= min(samples) < 32 and 68 < max(samples) <= 70
    queue = RecordingQueue()
    d.take(queue, [(i, b"") for i in range(50)], now=0.0)
    d.release_due(queue, 1.0)
    ids = [i for i, _ in queue.verdicts]
    assert sorted(ids) == list(range(50)) and ids != list(range(50))


def test_normal_jitter_never_goes_below_zero():
    d = delayer(jitter_ms=100, distribution="normal")
    assert min(d.sample_ms() for _ in range(2000)) == 0.0


def test_loss_drops_about_that_share_and_the_rest_is_released_at_exit():
    d, queue = delayer(loss_percent=25), RecordingQueue()
    d.take(queue, [(i, b"") for i in range(4000)], now=0.0)
    dropped = [i for i, v in queue.verdicts if v == script.NF_DROP]
    assert 850 < len(dropped) < 1150
    d.release_all(queue)
    assert len(queue.verdicts) == 4000 and d.stats["released_at_exit"] == 4000 - len(dropped)


def test_reorder_sends_that_share_at_once_and_delays_the_rest():
    d, queue = delayer(reorder_percent=40), RecordingQueue()
    d.take(queue, [(i, b"") for i in range(2000)], now=0.0)
    assert 700 < len(queue.verdicts) < 900 and d.stats["sent_at_once"] == len(queue.verdicts)
    d.release_due(queue, 0.049)
    assert len(queue.verdicts) == d.stats["sent_at_once"]
    d.release_due(queue, 0.05)
    assert len(queue.verdicts) == 2000


def test_the_seed_makes_the_delays_repeatable():
    assert [delayer(jitter_ms=5).sample_ms() for _ in range(3)] == \
        [delayer(jitter_ms=5).sample_ms() for _ in range(3)]
    assert random.Random(1).random() != random.Random(2).random()


def test_udp_ports_are_read_from_ipv4_and_ipv6_headers():
    ipv4 = bytes([0x45]) + bytes(8) + bytes([17]) + bytes(10) + struct.pack("!HH", 5405, 5406)
    ipv6 = bytes([0x60]) + bytes(5) + bytes([17]) + bytes(33) + struct.pack("!HH", 1, 5405)
    assert script.udp_ports(ipv4 + bytes(4)) == "5405>5406"
    assert script.udp_ports(ipv6 + bytes(4)) == "1>5405"
    assert script.udp_ports(b"\x45" + bytes(30)) == ""


def test_a_verdict_is_laid_out_as_nfnetlink_queue_expects():
    class Sock:
        sent = []

        def send(self, data):
            self.sent.append(data)
    queue = script.NfQueue.__new__(script.NfQueue)
    queue.queue_num, queue.seq, queue.sock = 5405, 0, Sock()
    queue.verdict(0x01020304, script.NF_ACCEPT)
    [data] = Sock.sent
    length, msg_type, flags, seq, _pid = struct.unpack_from("=IHHII", data)
    assert (length, msg_type, flags, seq) == (len(data), 0x0301, 1, 1)
    assert data[16:20] == bytes([0, 0]) + struct.pack("!H", 5405)
    attr_len, attr_type = struct.unpack_from("=HH", data, 20)
    assert (attr_len, attr_type) == (12, script.NFQA_VERDICT_HDR)
    assert data[24:32] == struct.pack("!II", 1, 0x01020304)
    assert dict(script._attrs(data[20:])) == {2: data[24:32]}


def test_attributes_are_padded_to_four_bytes():
    assert script._attr(2, b"12345") == struct.pack("=HH", 9, 2) + b"12345" + b"\0\0\0"
