"""Delay a node's queued packets in user space: a stand-in for `tc netem delay` on kernels
built without sch_netem.

Runs ON THE NODE, self-contained (Python 3 standard library only), either from a file or
fed on stdin (``python3 - --delay-ms 50 --max-seconds 600``), so nothing has to be
installed on a real node. An iptables rule sends the packets to delay to NFQUEUE queue
``--queue-num`` (harness/netdelay.py adds and removes it); this script binds that queue over
a raw NETLINK_NETFILTER socket (the nfnetlink_queue protocol, include/uapi/linux/netfilter/
nfnetlink_queue.h), receives each packet (copy-packet mode, the first --copy-range bytes,
only to log what it holds), keeps it for delay +- jitter and then issues NF_ACCEPT. Packets
are released by their own due time, so with jitter they may leave out of order (as with
netem's jitter). ``--loss-percent`` drops a packet (NF_DROP) with that probability;
``--reorder-percent`` sends that share at once and delays the rest (netem's ``reorder``,
without its correlation).

Duplication is refused: a verdict accepts or drops the one packet the kernel queued; it
cannot send it twice (that would take a second, raw-socket sender, which this is not).

Bounded and fail-safe:
- it exits by itself after --max-seconds (required), and at once on SIGTERM/SIGINT;
  before exiting it accepts every packet it still holds, and for a short drain window
  accepts at once whatever the kernel still queues;
- the queue is bound with NFQA_CFG_F_FAIL_OPEN: when the queue (--queue-maxlen) or the
  socket buffer is full the kernel accepts the packet instead of dropping it;
- with the rule's --queue-bypass, packets pass untouched when no process has the queue
  bound (this one killed, even with SIGKILL). The packets it held at that moment are
  dropped by the kernel when the socket closes (nfnetlink_queue flushes an unbound queue
  with NF_DROP): at most delay's worth of traffic, once.

Output (stdout, one JSON object a line): {"event": "ready", ...} once the queue is bound,
{"event": "exit", ...} with counters at the end. The pid file (--pid-file) is written
only once the queue is bound, and removed at exit.
"""

from __future__ import annotations

import argparse
import errno
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQA_CFG_MASK, NFQA_CFG_FLAGS = 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_PACKET = 2
NFQA_CFG_F_FAIL_OPEN = 1
NF_DROP, NF_ACCEPT = 0, 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

DRAIN_S = 0.2  # at exit: accept at once whatever is still queued, for this long
MAX_DELAY_MS = 60_000.0  # refuse more: a "delay" of minutes is a partition, not a delay
RECV_BATCH = 512  # packets read per wake-up before the due ones are released again


class NfQueue:
    """One bound nfnetlink_queue: read queued packets, give verdicts."""

    def __init__(self, queue_num: int, copy_range: int, maxlen: int) -> None:
        self.queue_num, self.seq = queue_num, 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        for option, value in ((socket.SO_RCVBUF, 4 << 20), (socket.SO_SNDBUF, 1 << 20)):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, option, value)
            except OSError:
                pass
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self._config(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)),
                     "bind")
        self._config(_attr(NFQA_CFG_PARAMS, struct.pack("!IB", copy_range, NFQNL_COPY_PACKET))
                     + _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))
                     + _attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
                     + _attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
                     "copy-packet mode, fail-open")
        self.sock.setblocking(False)

    def _message(self, msg_type: int, flags: int, payload: bytes) -> bytes:
        self.seq += 1
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.queue_num) + payload
        return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type,
                           flags, self.seq, 0) + body

    def _config(self, attrs: bytes, what: str) -> None:
        self.sock.send(self._message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, attrs))
        seq = self.seq
        self.sock.settimeout(2.0)
        while True:
            data = self.sock.recv(65536)
            for msg_type, msg_seq, body in _messages(data):
                if msg_type == NLMSG_ERROR and msg_seq == seq:
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        raise OSError(code, f"nfnetlink_queue {what} (queue "
                                      f"{self.queue_num}): {os.strerror(code)}")
                    return

    def verdict(self, packet_id: int, verdict: int) -> None:
        message = self._message(NFQNL_MSG_VERDICT, NLM_F_REQUEST,
                                _attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id)))
        while True:
            try:
                self.sock.send(message)
                return
            except BlockingIOError:
                select.select([], [self.sock], [], 0.05)

    def receive(self) -> tuple[list[tuple[int, bytes]], int]:
        """Queued packets now readable ([(id, first bytes)]) and how many errors came back."""
        packets, errors = [], 0
        for _ in range(RECV_BATCH):
            try:
                data = self.sock.recv(1 << 17)
            except (BlockingIOError, InterruptedError):
                break
            for msg_type, _seq, body in _messages(data):
                if msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    attrs = dict(_attrs(body[4:]))
                    packet_id = struct.unpack_from("!I", attrs[NFQA_PACKET_HDR])[0]
                    packets.append((packet_id, attrs.get(NFQA_PAYLOAD, b"")))
                elif msg_type == NLMSG_ERROR and struct.unpack_from("=i", body)[0]:
                    errors += 1  # a verdict for a packet the kernel no longer holds
        return packets, errors

    def close(self) -> None:
        self.sock.close()  # the kernel unbinds the queue; --queue-bypass lets packets pass


def _attr(attr_type: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), attr_type) + data
    return raw + b"\0" * (-len(raw) % 4)


def _attrs(data: bytes):
    offset = 0
    while offset + 4 <= len(data):
        length, attr_type = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return
        yield attr_type & NLA_TYPE_MASK, data[offset + 4:offset + length]
        offset += (length + 3) & ~3


def _messages(data: bytes):
    offset = 0
    while offset + 16 <= len(data):
        length, msg_type, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            return
        yield msg_type, seq, data[offset + 16:offset + length]
        offset += (length + 3) & ~3


def udp_ports(payload: bytes) -> str:
    """'sport>dport' of an IPv4/IPv6 UDP packet's first bytes, for the log ('' if not)."""
    if len(payload) >= 28 and payload[0] >> 4 == 4 and payload[9] == 17:
        start = (payload[0] & 0x0F) * 4
    elif len(payload) >= 48 and payload[0] >> 4 == 6 and payload[6] == 17:
        start = 40
    else:
        return ""
    if len(payload) < start + 4:
        return ""
    sport, dport = struct.unpack_from("!HH", payload, start)
    return f"{sport}>{dport}"


class Delayer:
    """Which packet leaves when: delay +- jitter per packet, optional loss."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.rng = args, random.Random(args.seed)
        self.held: list[tuple[float, int, int]] = []  # (due, arrival order, packet id)
        self.order = 0
        self.stats = {"queued": 0, "accepted": 0, "lost": 0, "sent_at_once": 0,
                      "released_at_exit": 0, "verdict_errors": 0, "max_late_ms": 0.0,
                      "delay_sum_ms": 0.0, "ports": {}}

    def sample_ms(self) -> float:
        a = self.args
        if a.jitter_ms <= 0:
            return a.delay_ms
        if a.distribution == "normal":
            return max(0.0, self.rng.gauss(a.delay_ms, a.jitter_ms))
        return max(0.0, a.delay_ms + self.rng.uniform(-a.jitter_ms, a.jitter_ms))

    def take(self, queue: NfQueue, packets: list[tuple[int, bytes]], now: float) -> None:
        for packet_id, payload in packets:
            self.stats["queued"] += 1
            ports = udp_ports(payload)
            self.stats["ports"][ports] = self.stats["ports"].get(ports, 0) + 1
            if self.args.loss_percent > 0 and self.rng.random() * 100 < self.args.loss_percent:
                queue.verdict(packet_id, NF_DROP)
                self.stats["lost"] += 1
                continue
            if self.args.reorder_percent > 0 and \
                    self.rng.random() * 100 < self.args.reorder_percent:
                queue.verdict(packet_id, NF_ACCEPT)  # netem's reorder: this one goes at once
                self.stats["accepted"] += 1
                self.stats["sent_at_once"] += 1
                continue
            delay = self.sample_ms()
            self.stats["delay_sum_ms"] += delay
            self.order += 1
            heapq.heappush(self.held, (now + delay / 1000.0, self.order, packet_id))

    def release_due(self, queue: NfQueue, now: float) -> None:
        while self.held and self.held[0][0] <= now:
            due, _order, packet_id = heapq.heappop(self.held)
            queue.verdict(packet_id, NF_ACCEPT)
            self.stats["accepted"] += 1
            self.stats["max_late_ms"] = max(self.stats["max_late_ms"], (now - due) * 1000)

    def release_all(self, queue: NfQueue) -> None:
        while self.held:
            queue.verdict(heapq.heappop(self.held)[2], NF_ACCEPT)
            self.stats["accepted"] += 1
            self.stats["released_at_exit"] += 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netdelay", description=__doc__.split("\n\n")[0])
    p.add_argument("--queue-num", type=int, default=5405, help="NFQUEUE number (0-65535)")
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--distribution", choices=("uniform", "normal"), default="uniform",
                   help="uniform: delay +- jitter; normal: gauss(delay, sigma=jitter)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--loss-percent", type=float, default=0.0)
    p.add_argument("--reorder-percent", type=float, default=0.0,
                   help="as netem's reorder: this share is sent at once, the rest delayed")
    p.add_argument("--duplicate-percent", type=float, default=0.0,
                   help="refused unless 0: a verdict cannot duplicate a packet")
    p.add_argument("--max-seconds", type=float, required=True,
                   help="exit (releasing every held packet) after this long")
    p.add_argument("--queue-maxlen", type=int, default=4096)
    p.add_argument("--copy-range", type=int, default=128)
    p.add_argument("--pid-file", default=None)
    p.add_argument("--tag", default="pvechaos_netdelay", help="marks the process (cmdline)")
    args = p.parse_args(argv)
    if args.duplicate_percent:
        p.error("duplication is not possible with nfnetlink_queue verdicts (a verdict accepts"
                " or drops the one queued packet); use tc netem where the kernel has it")
    if not 0 <= args.queue_num <= 65535:
        p.error("--queue-num must be 0-65535")
    if not 0 <= args.delay_ms <= MAX_DELAY_MS or not 0 <= args.jitter_ms <= MAX_DELAY_MS:
        p.error(f"--delay-ms and --jitter-ms must be 0-{MAX_DELAY_MS:.0f}")
    if not 0 <= args.loss_percent <= 100 or not 0 <= args.reorder_percent <= 100:
        p.error("--loss-percent and --reorder-percent must be 0-100")
    if not 0 < args.max_seconds <= 7 * 86400:
        p.error("--max-seconds must be > 0 (and at most a week)")
    return args


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "t": round(time.time(), 3), **fields}), flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        queue = NfQueue(args.queue_num, args.copy_range, args.queue_maxlen)
    except OSError as exc:
        hint = {errno.EPERM: "run as root (CAP_NET_ADMIN)",
                errno.EBUSY: "another process has this queue bound: stop it (its pid file) "
                             "or pick another --queue-num"}.get(exc.errno, "")
        emit("error", error=str(exc), hint=hint)
        return 2
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    stop = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _f: stop.append(s))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if args.pid_file:
        with open(args.pid_file + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(args.pid_file + ".tmp", args.pid_file)
    delayer = Delayer(args)
    started = time.monotonic()
    end = started + args.max_seconds
    emit("ready", pid=os.getpid(), queue=args.queue_num, delay_ms=args.delay_ms,
         jitter_ms=args.jitter_ms, distribution=args.distribution,
         loss_percent=args.loss_percent, reorder_percent=args.reorder_percent,
         max_seconds=args.max_seconds)
    reason = "max-seconds"
    try:
        while True:
            now = time.monotonic()
            delayer.release_due(queue, now)
            if stop:
                reason = f"signal {stop[0]}"
                break
            if now >= end:
                break
            timeout = min(end - now, 1.0)
            if delayer.held:
                timeout = max(0.0, min(timeout, delayer.held[0][0] - now))
            readable, _, _ = select.select([queue.sock, wake_r], [], [], timeout)
            if wake_r in readable:
                os.read(wake_r, 512)
            if queue.sock in readable:
                packets, errors = queue.receive()
                delayer.stats["verdict_errors"] += errors
                delayer.take(queue, packets, time.monotonic())
    finally:
        delayer.release_all(queue)
        drain_end = time.monotonic() + DRAIN_S
        while time.monotonic() < drain_end:  # bounded: DRAIN_S
            select.select([queue.sock], [], [], 0.02)
            packets, _errors = queue.receive()
            for packet_id, _payload in packets:
                queue.verdict(packet_id, NF_ACCEPT)
                delayer.stats["accepted"] += 1
                delayer.stats["released_at_exit"] += 1
        queue.close()
        if args.pid_file:
            try:
                os.unlink(args.pid_file)
            except FileNotFoundError:
                pass
        stats = delayer.stats
        delayed = max(1, stats["queued"] - stats["lost"] - stats["sent_at_once"])
        emit("exit", reason=reason, ran_s=round(time.monotonic() - started, 3),
             mean_delay_ms=round(stats.pop("delay_sum_ms") / delayed, 3),
             max_late_ms=round(stats.pop("max_late_ms"), 3), **stats)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
