"""The libvirt lab's verbs outside a run: build, build-gateway, status, destroy
(`pvechaos-lab libvirt`)."""

from __future__ import annotations

from lab.libvirt import snapshots
from lab.libvirt.build import Builder
from lab.libvirt.config import LibvirtConfig
from lab.libvirt.host import STATES, Host, libvirt_module
from lab.libvirt.plan import Plan


def build(config: LibvirtConfig, *, host: Host | None = None) -> int:
    host = host or Host(config.hosts[0])
    try:
        for node, volume in Builder(config, host).build().items():
            print(f"{node}: {volume}")
    finally:
        host.close()
    return 0


def build_gateway(config: LibvirtConfig, mirror: str, *, host: Host | None = None
                  ) -> int:
    from lab.libvirt.gateway import GatewayBuilder

    host = host or Host(config.hosts[0])
    try:
        GatewayBuilder(config, host).build(mirror)
    finally:
        host.close()
    return 0


def status(config: LibvirtConfig, *, host: Host | None = None, out=print) -> int:
    host = host or Host(config.hosts[0])
    plan = Plan(config)
    try:
        out(f"lab {config.name} on {host.uri}")
        for machine in plan.machines():
            dom = host.find_domain(machine.domain)
            if dom is None:
                out(f"  {machine.name:6} {machine.domain}: not defined")
                continue
            state = STATES.get(dom.state()[0], "unknown")
            ready = "ready snapshot" if snapshots.has_snapshot(dom) else "no ready snapshot"
            out(f"  {machine.name:6} {machine.domain}: {state}, {ready}, {machine.address}")
    finally:
        host.close()
    return 0


def destroy(config: LibvirtConfig, *, host: Host | None = None, out=print) -> int:
    """Every VM of the lab off and undefined with its snapshots, its overlays and serial
    logs deleted, its networks removed. Golden images stay."""
    libvirt = libvirt_module()
    host = host or Host(config.hosts[0])
    plan = Plan(config)
    try:
        for machine in plan.machines():
            dom = host.find_domain(machine.domain)
            if dom is not None:
                if dom.isActive():
                    host.call(f"power off {dom.name()}", dom.destroy)
                snapshots.delete_all(host, dom)
                host.call(f"undefine {dom.name()}", dom.undefine)
                out(f"removed {machine.domain}")
        try:
            pool = host.conn.storagePoolLookupByName(config.pool)
            pool.refresh(0)  # the serial logs are files virtlogd wrote, not volumes made
            for machine in plan.machines():
                serial = plan.serial_log(machine.name).rsplit("/", 1)[-1]
                for volume in (plan.overlay(machine.name), serial):
                    try:
                        pool.storageVolLookupByName(volume).delete(0)
                        out(f"removed {volume}")
                    except libvirt.libvirtError:
                        pass
        except libvirt.libvirtError:
            pass
        for name in (plan.management_network, plan.corosync_network):
            try:
                net = host.conn.networkLookupByName(name)
            except libvirt.libvirtError:
                continue
            if net.isActive():
                net.destroy()
            net.undefine()
            out(f"removed network {name}")
    finally:
        host.close()
    return 0
