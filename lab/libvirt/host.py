"""One libvirt host: the connection, its errors in plain words, its events, its links.

libvirt errors are translated here into LabError/ConfigError with the fix. Events
(lifecycle, guest reboot, watchdog) are delivered by libvirt's default event loop, run
in one daemon thread per process that wakes at least every 0.5 s to see whether it
should stop. Link state goes through a small `LinkSwitch` so that what the test driver
lacks (live device updates) has a twin with the same contract.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from harness.errors import LabError, UnsupportedFault
from lab.libvirt import xml
from lab.libvirt.plan import Nic

EventSink = Callable[[str, str, str], None]  # (domain name, event, detail)

STATES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown",
          5: "shutoff", 6: "crashed", 7: "pmsuspended"}
LIFECYCLE = {0: "defined", 1: "undefined", 2: "started", 3: "suspended", 4: "resumed",
             5: "stopped", 6: "shutdown", 7: "pmsuspended", 8: "crashed"}
STOPPED_DETAIL = {0: "shutdown", 1: "destroyed", 2: "crashed", 3: "migrated", 4: "saved",
                  5: "failed", 6: "from snapshot"}
WATCHDOG_ACTION = {0: "none", 1: "pause", 2: "reset", 3: "poweroff", 4: "shutdown",
                   5: "debug", 6: "inject-nmi"}
ERR_NO_SUPPORT, ERR_NO_DOMAIN = 3, 42


def libvirt_module():
    try:
        import libvirt
    except ImportError:
        raise LabError("the libvirt lab needs the Python module libvirt",
                       hint="apt-get install libvirt-dev pkg-config && "
                            "pip install libvirt-python") from None
    return libvirt


def connection_hint(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme == "qemu+ssh":
        who = f"{parts.username + '@' if parts.username else ''}{parts.hostname}"
        return (f"check that `ssh {who}` works without a password prompt from this "
                f"machine (keyfile= in the URI) and that libvirtd runs on {parts.hostname}")
    if parts.scheme == "test":
        return "the test driver's file must exist and be a valid <node> document"
    return ("is libvirtd running (systemctl start libvirtd) and are you root or in the "
            "libvirt group? apt-get install libvirt-daemon-system qemu-system-x86")


class Host:
    """A libvirt connection; opened lazily, closed by ``close``."""

    def __init__(self, uri: str, *, opener: Callable[[str], Any] | None = None) -> None:
        self.uri = uri
        self._opener = opener
        self._conn: Any = None
        self._callbacks: list[int] = []
        self._sinks: list[EventSink] = []

    @property
    def conn(self) -> Any:
        if self._conn is None:
            libvirt = libvirt_module()
            libvirt.registerErrorHandler(lambda *_: None, None)
            EventLoop.ensure(libvirt)
            try:
                self._conn = (self._opener or libvirt.open)(self.uri)
            except libvirt.libvirtError as exc:
                raise LabError(f"cannot connect to libvirt at {self.uri}: {exc}",
                               hint=connection_hint(self.uri)) from None
            if self._sinks:  # subscribers outlive a reconnection (a lab closed, started)
                self._register()
        return self._conn

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        if self._conn is None:
            return
        for callback_id in self._callbacks:
            try:
                self._conn.domainEventDeregisterAny(callback_id)
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass
        self._callbacks.clear()
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001
            pass
        self._conn = None

    def version(self) -> str:
        number = libvirt_module().getVersion()
        return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"

    # -- lookups -----------------------------------------------------------------------
    def find_domain(self, name: str) -> Any | None:
        libvirt = libvirt_module()
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == ERR_NO_DOMAIN:
                return None
            raise LabError(f"libvirt at {self.uri}: {exc}") from None

    def domain(self, name: str) -> Any:
        found = self.find_domain(name)
        if found is None:
            raise LabError(f"libvirt domain {name} is not defined on {self.uri}",
                           hint="start the lab again (it defines its domains), or run "
                                "`pvechaos-lab libvirt build` if the golden images are "
                                "missing")
        return found

    def state(self, name: str) -> str:
        return STATES.get(self.domain(name).state()[0], "unknown")

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one libvirt call; its error becomes a LabError saying what was attempted."""
        libvirt = libvirt_module()
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == ERR_NO_SUPPORT:
                raise UnsupportedFault(f"{what}: not supported by {self.uri} ({exc})") from None
            raise LabError(f"{what} failed on {self.uri}: {exc}") from None

    # -- events ------------------------------------------------------------------------
    def subscribe(self, sink: EventSink) -> None:
        """Lifecycle, reboot and watchdog events of every domain go to ``sink``, on this
        connection and on every later one. libvirt tracks one callback per event kind
        and connection ("event callback already tracked" for a second, seen on
        libvirtd 9.0), so the callbacks are registered once and hand each event to every
        sink."""
        self._sinks.append(sink)
        if self._conn is not None and not self._callbacks:
            self._register()
        elif self._conn is None:
            self.conn  # noqa: B018 -- opening registers

    def _emit(self, domain: str, event: str, detail: str) -> None:
        for sink in list(self._sinks):
            sink(domain, event, detail)

    def _register(self) -> None:
        libvirt = libvirt_module()

        def lifecycle(_conn, dom, event, detail, _opaque):
            name = LIFECYCLE.get(event, str(event))
            text = STOPPED_DETAIL.get(detail, str(detail)) if event == 5 else str(detail)
            self._emit(dom.name(), name, text)

        def reboot(_conn, dom, _opaque):
            self._emit(dom.name(), "reboot", "guest reset itself")

        def watchdog(_conn, dom, action, _opaque):
            self._emit(dom.name(), "watchdog", WATCHDOG_ACTION.get(action, str(action)))

        for event_id, callback in (
                (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle),
                (libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, reboot),
                (libvirt.VIR_DOMAIN_EVENT_ID_WATCHDOG, watchdog)):
            self._callbacks.append(
                self._conn.domainEventRegisterAny(None, event_id, callback, None))


class EventLoop:
    """libvirt's default event loop in one daemon thread (it must exist before the first
    connection is opened for events to be delivered)."""

    _lock = threading.Lock()
    _thread: threading.Thread | None = None

    @classmethod
    def ensure(cls, libvirt: Any) -> None:
        with cls._lock:
            if cls._thread is not None:
                return
            libvirt.virEventRegisterDefaultImpl()
            # a timer makes each run of the loop return within 0.5 s
            libvirt.virEventAddTimeout(500, lambda *_: None, None)

            def run() -> None:
                while True:
                    libvirt.virEventRunDefaultImpl()

            cls._thread = threading.Thread(target=run, name="libvirt-events", daemon=True)
            cls._thread.start()


# -- link state ---------------------------------------------------------------------------
class LinkSwitch(Protocol):
    """Carrier of one NIC of a running domain."""

    def set_link(self, dom: Any, nic: Nic, up: bool) -> None: ...

    def link_is_up(self, dom: Any, nic: Nic) -> bool: ...


class LibvirtLinks:
    """The real thing: a live device update of the NIC (what `virsh domif-setlink`
    does, without its XML bug, real-lab.md §3.3)."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def set_link(self, dom: Any, nic: Nic, up: bool) -> None:
        libvirt = libvirt_module()
        self.host.call(f"link {'up' if up else 'down'} of {nic.mac} on {dom.name()}",
                       dom.updateDeviceFlags, xml.interface(nic, up=up),
                       libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def link_is_up(self, dom: Any, nic: Nic) -> bool:
        import xml.etree.ElementTree as ET

        root = ET.fromstring(dom.XMLDesc(0))
        for iface in root.iter("interface"):
            mac = iface.find("mac")
            if mac is not None and mac.get("address", "").lower() == nic.mac:
                link = iface.find("link")
                return link is None or link.get("state", "up") == "up"
        raise LabError(f"{dom.name()} has no NIC with MAC {nic.mac}")


class RecordedLinks:
    """The twin for libvirt's test driver, which has no live device updates: it keeps
    the state each NIC was set to, for the boot it was set in (a live change is lost when
    the VM powers off: the next boot reads the definition). Same contract as
    LibvirtLinks (tests/unit/libvirt_lab/test_link_contract.py)."""

    def __init__(self) -> None:
        self.down: dict[tuple[str, str], int] = {}  # (domain, MAC) -> boot (domain ID)
        self.calls: list[tuple[str, str, bool]] = []

    def set_link(self, dom: Any, nic: Nic, up: bool) -> None:
        if not dom.isActive():
            raise LabError(f"link {'up' if up else 'down'} of {nic.mac} on {dom.name()} "
                           "failed: domain is not running")
        self.calls.append((dom.name(), nic.mac, up))
        if up:
            self.down.pop((dom.name(), nic.mac), None)
        else:
            self.down[(dom.name(), nic.mac)] = _boot(dom)

    def link_is_up(self, dom: Any, nic: Nic) -> bool:
        return not dom.isActive() or self.down.get((dom.name(), nic.mac)) != _boot(dom)


def _boot(dom: Any) -> int:
    """The domain's ID, which changes with each QEMU process; looked up afresh (a handle
    keeps the ID it was looked up with)."""
    return dom.connect().lookupByName(dom.name()).ID()

