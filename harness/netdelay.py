"""Delay a node's outgoing corosync traffic without sch_netem: NFQUEUE + a user-space delayer.

Kernels built without ``CONFIG_NET_SCH_NETEM`` (this project's CI machines among them)
cannot run ``tc qdisc ... netem delay``. This is the fallback for the delay part of a
degraded link (harness/netfaults.py owns the netem path and decides when to use this):

- the script harness/node_scripts/netdelay.py is fed to ``python3 -`` on the node through a
  quoted heredoc inside the apply command (``Node.run(command.apply)`` has no stdin), started
  in the background (``setsid nohup``), pid file and log under /run; it binds NFQUEUE queue
  ``QUEUE_NUM`` fail-open and holds each packet for delay +- jitter before accepting it;
- only once it is ready (pid file written, bounded wait) does the apply add the rule: a
  chain ``pvechaos_delay`` in iptables' mangle table, jumped to first from mangle OUTPUT,
  sending outgoing UDP to ports 5405-5412 (corosync/knet) to the queue with
  ``--queue-bypass`` (packets pass untouched when no delayer is bound);
- the undo deletes the rule first, then stops the delayer (SIGTERM: it accepts every
  packet it still holds; SIGKILL after a bounded wait); SWEEPS["netdelay"] does the same
  for a killed run.

Why mangle: an NF_ACCEPT verdict ends the packet's walk through the iptables chain that
queued it, so a rule in filter OUTPUT would let delayed packets skip the rules after it
(pve-firewall's). In mangle (priority -150) every later table still sees the packet:
harness/netfaults.py's loss and partition chains (nft, priority -10) and pve-firewall's
filter rules.

Limits, compared with netem: delay, jitter (uniform or normal, so packets reorder as with
netem's jitter), reorder (a share sent at once) and loss; duplication cannot be done with
verdicts and is refused; rate limiting is not done and is refused.

pve-firewall leaves this chain alone: it tracks only chains named PVEFW-*, tap*, veth*,
fwbr* and GROUP-* of the table it manages and loads rules with ``iptables-restore -n``
(no flush) (proxmox/pve-firewall src/PVE/Firewall.pm, iptables_get_chains and
iptables_restore_cmdlist). Guess: the nftables-based proxmox-firewall (opt-in on PVE 8)
likewise touches only its own tables.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.errors import PvechaosError
from harness.node_command import LEFTOVERS, SWEEPS, NodeCommand

SCRIPT = Path(__file__).with_name("node_scripts") / "netdelay.py"
CHAIN = "pvechaos_delay"
TABLE = "mangle"
QUEUE_NUM = 5405
PORTS = (5405, 5412)  # corosync: knet's default port 5405 and the links after it (Guess:
#                       up to 8 links, mcastport + link number; pve-faults.md §5.2)
TAG = "pvechaos_netdelay"  # in the delayer's command line: a pid is ours only if it has it
PID_FILE = "/run/pvechaos_netdelay.pid"
LOG_FILE = "/run/pvechaos_netdelay.log"
HEREDOC_END = "PVECHAOS_NETDELAY_SCRIPT_END"
READY_WAIT = (50, 0.1)  # polls x seconds: how long apply waits for the delayer's pid file
STOP_WAIT = (50, 0.1)  # polls x seconds: how long undo waits for it to exit after SIGTERM
IPTABLES = ("iptables", "ip6tables")  # ip6tables only where installed


@dataclass(frozen=True)
class DelaySpec:
    """What to do to each outgoing corosync packet (netem's words: delay, jitter, loss)."""

    delay_ms: float
    max_seconds: float  # the delayer ends by itself after this long, whatever happens
    jitter_ms: float = 0.0
    distribution: str = "uniform"  # "uniform": delay +- jitter; "normal": sigma = jitter
    loss_percent: float = 0.0
    reorder_percent: float = 0.0  # as netem's reorder: this share goes at once
    seed: int | None = None
    peers: tuple[str, ...] = ()  # destination addresses to delay to; () = every one
    duplicate_percent: float = 0.0  # refused unless 0: see module docstring
    rate_kbit: int | None = None  # refused unless None: no rate limiting here

    def check(self) -> None:
        if self.duplicate_percent:
            raise PvechaosError(
                "duplication needs tc netem: the NFQUEUE delayer can only accept or drop "
                "each packet", hint="run on a kernel with sch_netem, or drop duplication")
        if self.rate_kbit is not None:
            raise PvechaosError(
                "rate limiting needs tc netem: the NFQUEUE delayer does not pace packets",
                hint="run on a kernel with sch_netem, or drop the rate")
        for peer in self.peers:
            try:
                ipaddress.ip_address(peer)
            except ValueError:
                raise PvechaosError(f"peer {peer!r} is not an IP address",
                                    hint="give the peers' corosync addresses") from None
        if self.distribution not in ("uniform", "normal"):
            raise PvechaosError(f"unknown jitter distribution {self.distribution!r}",
                                hint="use 'uniform' or 'normal'")
        if not (0 <= self.delay_ms <= 60_000 and 0 <= self.jitter_ms <= 60_000):
            raise PvechaosError(f"delay {self.delay_ms} ms / jitter {self.jitter_ms} ms out "
                                "of range", hint="0-60000 ms each")
        if not (0 <= self.loss_percent <= 100 and 0 <= self.reorder_percent <= 100):
            raise PvechaosError(f"loss {self.loss_percent}% / reorder "
                                f"{self.reorder_percent}% out of range", hint="0-100 each")
        if not 0 < self.max_seconds <= 7 * 86400:
            raise PvechaosError(f"max_seconds {self.max_seconds} out of range",
                                hint="give the scenario's own bound, > 0")

    def args(self) -> list[str]:
        """The delayer's command line (after ``python3 -``)."""
        argv = ["--delay-ms", f"{self.delay_ms:g}", "--max-seconds", f"{self.max_seconds:g}",
                "--queue-num", str(QUEUE_NUM), "--pid-file", PID_FILE, "--tag", TAG]
        if self.jitter_ms:
            argv += ["--jitter-ms", f"{self.jitter_ms:g}", "--distribution", self.distribution]
        if self.loss_percent:
            argv += ["--loss-percent", f"{self.loss_percent:g}"]
        if self.reorder_percent:
            argv += ["--reorder-percent", f"{self.reorder_percent:g}"]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        return argv

    def detail(self) -> str:
        text = f"delay {self.delay_ms:g}ms"
        if self.jitter_ms:
            text += f" ±{self.jitter_ms:g}ms" + (" normal" if self.distribution == "normal"
                                                 else "")
        if self.reorder_percent:
            text += f" reorder {self.reorder_percent:g}%"
        if self.loss_percent:
            text += f" loss {self.loss_percent:g}%"
        to = f" to {', '.join(self.peers)}" if self.peers else ""
        return text + f" on udp {PORTS[0]}-{PORTS[1]} out{to} (nfqueue)"


def script_text() -> str:
    text = SCRIPT.read_text()
    if any(line.strip() == HEREDOC_END for line in text.splitlines()):
        raise PvechaosError(f"{SCRIPT} contains the heredoc end marker {HEREDOC_END}",
                            hint="rename HEREDOC_END in harness/netdelay.py")
    return text


def _each_iptables(body: str) -> str:
    """``body`` (using $ipt) for iptables and, where installed, ip6tables."""
    return (f"for ipt in {' '.join(IPTABLES)}; do "
            f"command -v $ipt >/dev/null 2>&1 || continue; {body}; done")


def _rule_add(peers: tuple[str, ...]) -> str:
    """The chain, its NFQUEUE rule(s) (one per peer, or one for every destination), and
    the jump from mangle OUTPUT, per family: IPv4 always, IPv6 where ip6tables is
    installed (and, with peers, only for the families they have)."""
    parts = []
    for ipt, six in (("iptables", False), ("ip6tables", True)):
        dests = [p for p in peers if ipaddress.ip_address(p).version == (6 if six else 4)]
        if peers and not dests:
            continue
        matches = [f"-d {d} " for d in dests] or [""]
        steps = [f"{ipt} -w 5 -t {TABLE} -N {CHAIN}",
                 *(f"{ipt} -w 5 -t {TABLE} -A {CHAIN} {m}-p udp --dport {PORTS[0]}:{PORTS[1]}"
                   f" -j NFQUEUE --queue-num {QUEUE_NUM} --queue-bypass" for m in matches),
                 f"{ipt} -w 5 -t {TABLE} -I OUTPUT 1 -j {CHAIN}"]
        line = " && ".join(steps) + " || exit 6"
        if six:
            line = f"if command -v {ipt} >/dev/null 2>&1; then {line}; fi"
        parts.append(line)
    return "\n".join(parts)


def _rule_remove() -> str:
    """Delete the jump(s), then the chain; quiet and successful when nothing is there."""
    jumps = " ".join(str(i) for i in range(1, 9))  # bounded: a jump added at most 8 times
    return _each_iptables(
        f"for i in {jumps}; do $ipt -w 5 -t {TABLE} -D OUTPUT -j {CHAIN} 2>/dev/null "
        f"|| break; done; $ipt -w 5 -t {TABLE} -F {CHAIN} 2>/dev/null; "
        f"$ipt -w 5 -t {TABLE} -X {CHAIN} 2>/dev/null; true")


def _ours() -> str:
    """Shell: set $pid to the running delayer's pid (pid file, command line has TAG), or
    to nothing."""
    return (f"pid=$(cat {PID_FILE} 2>/dev/null); "
            f"if [ -n \"$pid\" ] && ! tr '\\0' ' ' </proc/$pid/cmdline 2>/dev/null "
            f"| grep -q {TAG}; then pid=; fi")


def _stop_delayer() -> str:
    """SIGTERM the delayer named by the pid file (only if its command line has TAG), wait
    (bounded), SIGKILL if still there, remove the pid file. Succeeds when none runs."""
    polls, pause = STOP_WAIT
    return (f"{_ours()}; if [ -n \"$pid\" ]; then kill -TERM $pid; i=0; "
            f"while [ $i -lt {polls} ] && kill -0 $pid 2>/dev/null; do sleep {pause}; "
            f"i=$((i+1)); done; kill -0 $pid 2>/dev/null && kill -KILL $pid; fi; "
            f"rm -f {PID_FILE}; true")


def _start_delayer(spec: DelaySpec) -> str:
    polls, pause = READY_WAIT
    argv = " ".join(shlex.quote(a) for a in spec.args())
    return (f"rm -f {PID_FILE}\n"
            f"setsid nohup python3 - {argv} >{LOG_FILE} 2>&1 <<'{HEREDOC_END}' &\n"
            f"{script_text().rstrip()}\n{HEREDOC_END}\n"
            f"i=0; while [ $i -lt {polls} ] && [ ! -s {PID_FILE} ] && ! grep -q "
            f"'\"event\": \"error\"' {LOG_FILE} 2>/dev/null; do sleep {pause}; "
            f"i=$((i+1)); done\n"
            f"[ -s {PID_FILE} ] || {{ echo 'pvechaos: the netdelay delayer did not start "
            f"(its log {LOG_FILE} follows)' >&2; cat {LOG_FILE} >&2; exit 5; }}\n")


def _precheck() -> str:
    return (
        "command -v python3 >/dev/null 2>&1 || { echo 'pvechaos: python3 is not installed on "
        "this node (apt-get install python3)' >&2; exit 127; }\n"
        "command -v iptables >/dev/null 2>&1 || { echo 'pvechaos: iptables is not installed on "
        "this node (apt-get install iptables)' >&2; exit 127; }\n"
        f"{_ours()}\n"
        f"if iptables -w 5 -t {TABLE} -S {CHAIN} >/dev/null 2>&1 || [ -n \"$pid\" ]; then "
        f"echo 'pvechaos: a netdelay is already in force on this node (chain {CHAIN} or "
        f"the delayer in {PID_FILE}); end it first' >&2; exit 3; fi\n")


def delay_command(spec: DelaySpec) -> NodeCommand:
    """The "netem" NodeCommand that delays this node's outgoing corosync UDP via NFQUEUE.

    apply: refuse if one is already in force; start the delayer (script in a heredoc);
    wait until it has bound the queue; then add the rule. undo: rule first, then the
    delayer (which releases what it holds)."""
    spec.check()
    apply = _precheck() + _start_delayer(spec) + _rule_add(spec.peers) + "\n"
    undo = f"{_rule_remove()}; {_stop_delayer()}"
    return NodeCommand("netem", spec.detail(), apply=apply, undo=undo)


def stats_command() -> str:
    """Shell: print the delayer's log (its ready/exit JSON lines, see parse_log)."""
    return f"cat {LOG_FILE} 2>/dev/null; true"


def parse_log(text: str) -> list[dict]:
    """The delayer's JSON lines (ready, exit, error) from its log (stats_command())."""
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


SWEEPS["netdelay"] = f"( {_rule_remove()}; {_stop_delayer()} )"
LEFTOVERS["netdelay"] = ("( " + _each_iptables(f"$ipt -w 5 -t {TABLE} -S {CHAIN} 2>/dev/null "
                                               "| sed \"s/^/$ipt: /\"")
                         + f"; {_ours()}; if [ -n \"$pid\" ]; then "
                         "echo \"delayer running: pid $pid\"; fi; true )")
