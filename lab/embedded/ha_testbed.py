"""An HA testbed: an embedded lab booted, its cluster formed, with shared NFS storage and
self-test guests, observed as a user would. For the HA self-tests (tests/integration) and
the HA benchmark (bench/), which both boot it with ``boot_ha_lab``.

Everything is asked the way a user would: `ha-manager status`, `pvesh`, the guests' own
port; only power, links and the node logs are taken from the lab directly.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from harness.cluster import Cluster, Node
from harness.errors import PvechaosError, WaitTimeout
from harness.formation import form_cluster
from harness.timescale import Timescale
from harness.waits import NotYet, wait_until
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from lab.embedded.provision import CT_TEMPLATE

TEMPLATE = CT_TEMPLATE  # on the shared storage (lab/embedded/provision.py)
SERVICE = re.compile(r"^service (\S+) \((\S+), (.+)\)$")


@dataclass
class HaLab:
    """A booted, formed lab with shared storage (``boot_ha_lab``); ``close`` ends it."""

    lab: EmbeddedLab
    cluster: Cluster
    prefix: str  # "198.18.61": guests get <prefix>.<vmid - 0>

    @property
    def k(self) -> float:
        return self.lab.config.timescale.factor

    def s(self, pve_seconds: float) -> float:
        """PVE seconds in real seconds at this lab's timescale."""
        return self.lab.config.timescale.scaled(pve_seconds)

    def node(self, name: str) -> Node:
        return self.cluster.node(name)

    def live(self, exclude: tuple[str, ...] = ()) -> Node:
        """A powered node answering over SSH (to ask for the cluster's view)."""
        for node in self.cluster.nodes():
            if node.name not in exclude and self.lab.is_powered(node.name):
                return node
        raise AssertionError("no node is powered")

    # -- setup ------------------------------------------------------------------------
    def guest_ip(self, vmid: int) -> str:
        assert 100 <= vmid < 250, "self-test guests use VMIDs 100-249 (their last octet)"
        return f"{self.prefix}.{vmid}"

    def create_ct(self, node: str, vmid: int, *extra: str) -> None:
        self.node(node).check("pct", "create", str(vmid), TEMPLATE, "--rootfs", "shared:1",
                              "--net0", f"name=eth0,bridge=vmbr0,ip={self.guest_ip(vmid)}/24",
                              *extra, timeout_s=30)

    def ha(self, *args: str, on: str | None = None) -> str:
        node = self.node(on) if on else self.live()
        return node.check("ha-manager", *args, timeout_s=30)

    def write(self, path: str, text: str, on: str | None = None) -> None:
        node = self.node(on) if on else self.live()
        node.run(f"cat > {path}", stdin=text, timeout_s=15)

    # -- observing --------------------------------------------------------------------
    def services(self, on: str | None = None) -> dict[str, tuple[str, str]]:
        """sid -> (node, state) as `ha-manager status` shows them."""
        node = self.node(on) if on else self.live()
        out = node.check("ha-manager", "status", timeout_s=15)
        return {m[1]: (m[2], m[3]) for m in map(SERVICE.match, out.splitlines()) if m}

    def manager_status(self, on: str | None = None) -> dict:
        node = self.node(on) if on else self.live()
        return json.loads(node.check("pvesh", "get", "/cluster/ha/status/manager_status",
                                     "--output-format", "json", timeout_s=15))

    def master(self) -> str:
        return self.manager_status()["manager_status"]["master_node"]

    def node_state(self, name: str) -> str:
        return self.manager_status()["manager_status"]["node_status"].get(name, "unknown")

    def answer(self, vmid: int, timeout_s: float = 0.5) -> str | None:
        """What the guest answers on its port: `<sid> <node> <boot> <seq>`, or None."""
        try:
            with socket.create_connection((self.guest_ip(vmid), 8080), timeout=timeout_s) as c:
                c.settimeout(timeout_s)
                return c.recv(256).decode().strip() or None
        except OSError:
            return None

    def wait_service(self, sid: str, state: str, node: str | None = None, *,
                     timeout_s: float, on: str | None = None) -> float:
        """Wait until `ha-manager status` shows sid in state (on node); returns when."""
        def seen() -> bool | NotYet:
            try:
                current = self.services(on).get(sid)
            except PvechaosError as exc:
                return NotYet(str(exc))
            want = (node, state) if node else None
            ok = current is not None and (current == want if want else current[1] == state)
            return ok or NotYet(f"{sid}: {current}")

        with self.diagnosed():
            wait_until(f"{sid} {state}{' on ' + node if node else ''}", seen,
                       timeout_s=timeout_s, interval_s=0.25)
        return time.monotonic()

    def wait_answer(self, vmid: int, node: str, *, timeout_s: float) -> float:
        """Wait until the guest answers from node; returns when."""
        def served() -> bool | NotYet:
            reply = self.answer(vmid)
            return bool(reply and reply.split()[1] == node) or NotYet(f"answer: {reply}")

        with self.diagnosed():
            wait_until(f"guest {vmid} to answer from {node}", served, timeout_s=timeout_s,
                       interval_s=0.1)
        return time.monotonic()

    @contextlib.contextmanager
    def diagnosed(self) -> Iterator[None]:
        """A wait that times out says what HA showed and what the CRMs and LRMs logged."""
        try:
            yield
        except WaitTimeout as exc:
            raise WaitTimeout(exc.what, exc.timeout_s,
                              f"{exc.last_seen}\n{self.diagnosis()}") from None

    def diagnosis(self) -> str:
        parts = []
        try:
            parts.append(self.live().run("ha-manager", "status", timeout_s=10).stdout)
        except (PvechaosError, AssertionError) as exc:
            parts.append(f"(ha-manager status: {exc})")
        for node in ("node1", "node2", "node3"):
            for daemon in ("crm", "lrm"):
                tail = self.log(node, daemon).splitlines()[-12:]
                parts.append(f"--- {node} pve-ha-{daemon} (last lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    def boot_id(self, node: str) -> str:
        return self.node(node).check("cat", "/run/pvechaos/boot_id").strip()

    def log(self, node: str, daemon: str) -> str:
        """A node's daemon log, read from the lab (it survives the node's power)."""
        path = self.lab.config.lab_dir / "nodes" / node / "log" / f"pve-ha-{daemon}.log"
        try:
            return path.read_text()
        except OSError:
            return ""

    def close(self) -> None:
        self.cluster.close()
        self.lab.close()


def boot_ha_lab(name: str, prefix: str, *, timescale: Timescale, pve_version: str = "8.4.1",
                emulation_bugs: tuple[str, ...] = ()) -> HaLab:
    """Start lab ``name`` on ``<prefix>.0/24``, form its cluster and add the NFS storage
    `shared` (the lab's gateway export); a failure once the lab started closes it.
    ``emulation_bugs``: the HA stack made unsafe on purpose (EmbeddedConfig)."""
    lab = EmbeddedLab(EmbeddedConfig(name=name, subnet=f"{prefix}.0/24", timescale=timescale,
                                     pve_version=pve_version, emulation_bugs=emulation_bugs))
    lab.start()
    cluster = Cluster(lab)
    try:
        form_cluster(cluster)
        cluster.node("node1").check("pvesm", "add", "nfs", "shared", "--server",
                                    f"{prefix}.1", "--export", "/export", "--content",
                                    "rootdir,images")
    except BaseException:
        cluster.close()
        lab.close()
        raise
    return HaLab(lab, cluster, prefix)
