"""Background watchers: what each node believes, polled over SSH onto the timeline.

One thread per node, so a node that is off or frozen never delays the others. Each poll
is bounded (command deadline), the loop ends when stopped, and stop() joins with a bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from harness.cluster import Cluster, Node
from harness.errors import CommandTimeout, NodeUnreachable, PvechaosError
from harness.events import MembershipChanged, Note, QuorumView, Reachable, Unreachable
from harness.ssh import CONNECT_TIMEOUT_S
from harness.timeline import EventKind, Timeline


class NodeWatcher:
    """One polling thread per node (`_watch`, written by each watcher); start/stop with
    bounded joins, usable as a context manager."""

    kind = "watcher"

    def __init__(self, cluster: Cluster, timeline: Timeline, *, interval_s: float = 0.5,
                 command_timeout_s: float = 4.0, names: Iterable[str] | None = None) -> None:
        self.cluster, self.timeline = cluster, timeline
        self.interval_s, self.command_timeout_s = interval_s, command_timeout_s
        self.names = tuple(names) if names is not None else None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.polls = 0

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _nodes(self) -> tuple[Node, ...]:
        if self.names is None:
            return tuple(self.cluster.nodes())
        return tuple(self.cluster.node(name) for name in self.names)

    def _watch(self, node: Node) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._stop.clear()
        for node in self._nodes():
            thread = threading.Thread(target=self._watch, args=(node,), daemon=True,
                                      name=f"{self.kind}-{node.name}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop every thread: each ends after its current poll, which may be an SSH
        connect to a node that is off (up to its connect timeout) and a command (up to the
        command deadline); the threads end in parallel, so they share one deadline."""
        self._stop.set()
        bound = timeout_s if timeout_s is not None else (
            CONNECT_TIMEOUT_S + self.command_timeout_s + 2.0)
        deadline = time.monotonic() + bound
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        if alive:
            raise PvechaosError(f"watcher threads did not stop: {', '.join(alive)}")


class QuorumWatcher(NodeWatcher):
    kind = "quorum-watcher"

    def __init__(self, cluster: Cluster, timeline: Timeline, **options: object) -> None:
        super().__init__(cluster, timeline, **options)
        self.views: dict[str, QuorumView | None] = {}

    def _watch(self, node: Node) -> None:
        reachable: bool | None = None
        view: QuorumView | None = None
        previous_poll_s: float | None = None
        while not self._stop.is_set():
            started = self.timeline.clock.now()
            try:
                status = node.quorum(timeout_s=self.command_timeout_s)
                poll_s = self.timeline.clock.now() - started
            except (NodeUnreachable, CommandTimeout) as exc:
                if reachable is not False:
                    self.timeline.record(EventKind.NODE_UNREACHABLE, node.name,
                                         Unreachable(str(exc).splitlines()[0]),
                                         t=started)
                reachable, view, previous_poll_s = False, None, None
                self.views[node.name] = None
            except PvechaosError as exc:  # answered, but no quorum information (corosync down)
                if reachable is not True:
                    self.timeline.record(EventKind.NODE_REACHABLE, node.name, Reachable(),
                                         t=started)
                reachable = True
                if view is not None or node.name not in self.views:
                    self.timeline.record(EventKind.NOTE, node.name, Note(
                        "no quorum information: " + str(exc).splitlines()[0]), t=started)
                view, previous_poll_s = None, None  # no view: its poll is not counted
                self.views[node.name] = None
            else:
                if reachable is not True:
                    self.timeline.record(EventKind.NODE_REACHABLE, node.name, Reachable(),
                                         t=started)
                reachable = True
                new = QuorumView(status.quorate,
                                 tuple(self.cluster.name_of(m.name) for m in status.members),
                                 status.expected_votes, status.total_votes,
                                 poll_s=round(poll_s, 3), previous_poll_s=previous_poll_s)
                self._record_change(node.name, view, new, started)
                view = new
                self.views[node.name] = new
                previous_poll_s = new.poll_s
            self.polls += 1
            self._stop.wait(self.interval_s)

    def _record_change(self, node: str, old: QuorumView | None, new: QuorumView,
                       t: float) -> None:
        if old is not None and old.quorate != new.quorate:
            kind = EventKind.QUORUM_REGAINED if new.quorate else EventKind.QUORUM_LOST
            self.timeline.record(kind, node, new, t=t)
        if old is None or old.members != new.members:
            self.timeline.record(EventKind.MEMBERSHIP_CHANGED, node,
                                 MembershipChanged.of(new, first_view=old is None), t=t)
        elif (old.expected_votes, old.total_votes) != (new.expected_votes, new.total_votes) \
                or old.quorate != new.quorate:
            self.timeline.record(EventKind.VOTES_CHANGED, node, new, t=t)
