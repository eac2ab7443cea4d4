"""`pvechaos-lab libvirt build`: the golden image of every node, once per PVE ISO.

On the libvirt host itself (it writes files next to the storage pool): prepare the ISO
for partition-mode answers (proxmox-auto-install-assistant, or the xorriso fallback),
one answer image per node (its FQDN, static management address, the harness's SSH key,
power-off when done on ISO 8.4.3+), one empty qcow2 golden volume per node, then the
three installs in parallel with each serial console logged to a file. An install is done
when its VM powers off (8.4.3+) or, on older ISOs, when the installed node answers SSH.
Labs then run on overlays of the golden volumes; nothing here touches a running lab.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, LabError
from lab.libvirt import answer, xml
from lab.libvirt.config import LibvirtConfig
from lab.libvirt.host import Host, libvirt_module
from lab.libvirt.lab import ensure_networks
from lab.libvirt.plan import Machine, Plan

POLL_S = 5.0


def node_answers(config: LibvirtConfig, plan: Plan) -> dict[str, str]:
    """answer.toml of every node, in the key spelling of the configured ISO."""
    public_key = config.ssh_key.with_name(config.ssh_key.name + ".pub").read_text().strip()
    answers = {}
    for machine in plan.nodes():
        spec = answer.NodeAnswer(
            fqdn=machine.fqdn, root_password=config.root_password, ssh_keys=(public_key,),
            cidr=f"{machine.address}/{machine.management.prefixlen}",
            gateway=plan.host_address, dns=plan.host_address, mac=machine.management.mac)
        answers[machine.name] = answer.render(spec, iso_version=config.iso_version)
    return answers


def ensure_pool(host: Host, config: LibvirtConfig) -> Any:
    """The lab's dir pool at ``pool_path``, defined (autostart) and started if need be."""
    conn = host.conn
    libvirt = libvirt_module()
    try:
        pool = conn.storagePoolLookupByName(config.pool)
    except libvirt.libvirtError:
        config.pool_path.mkdir(parents=True, exist_ok=True)
        pool = host.call(f"define pool {config.pool}", conn.storagePoolDefineXML,
                         xml.dir_pool(config.pool, str(config.pool_path)), 0)
        pool.setAutostart(1)
    if not pool.isActive():
        host.call(f"start pool {config.pool}", pool.create, 0)
    return pool


class Builder:
    def __init__(self, config: LibvirtConfig, host: Host, *,
                 run: Callable[..., Any] = subprocess.run,
                 which: Callable[[str], str | None] = shutil.which,
                 sleep: Callable[[float], None] = time.sleep,
                 progress: Callable[[str], None] = print,
                 answers_ssh: Callable[[str], bool] | None = None) -> None:
        self.config, self.host = config, host
        self.plan = Plan(config)
        self.run, self.which, self.sleep, self.progress = run, which, sleep, progress
        self.answers_ssh = answers_ssh or self._answers_ssh
        self.version = config.iso_version

    # -- files next to the pool ----------------------------------------------------------
    @property
    def workdir(self) -> Path:
        return self.config.pool_path

    def prepared_iso(self) -> Path:
        return self.workdir / f"pvechaos-{self.version}-auto.iso"

    def answer_image(self, node: str) -> Path:
        return self.workdir / f"pvechaos-{self.version}-{node}-answer.img"

    def install_machine(self, machine: Machine) -> Machine:
        return replace(machine, domain=f"pvechaos-install-{self.version}-{machine.name}")

    # -- steps ---------------------------------------------------------------------------
    def check_prerequisites(self) -> bool:
        """Refuse early, naming the fix; returns whether the official assistant is there."""
        iso = self.config.iso
        if iso is None:
            raise ConfigError(f"{self.config.source}: `iso:` is missing",
                              hint="give the path of the Proxmox VE ISO on this host "
                                   "(this workplace cannot download it: copy it here)")
        if not iso.is_file():
            raise ConfigError(f"the PVE ISO {iso} does not exist",
                              hint="copy the ISO there, or fix `iso:` in the lab config")
        missing = [t for t in ("mkfs.vfat", "mcopy") if self.which(t) is None]
        assistant = self.which("proxmox-auto-install-assistant") is not None
        if not assistant and self.which("xorriso") is None:
            missing.append("xorriso (or proxmox-auto-install-assistant)")
        if missing:
            raise LabError(f"building golden images needs {', '.join(missing)}",
                           hint="apt-get install dosfstools mtools xorriso")
        answer.key_style(self.version)  # refuses ISOs without the automated installer
        return assistant

    def prepare_iso(self, assistant: bool) -> Path:
        out = self.prepared_iso()
        if out.is_file() and out.stat().st_mtime >= self.config.iso.stat().st_mtime:
            return out
        mode_file = self.workdir / "auto-installer-mode.toml"
        mode_file.write_text(answer.MODE_FILE_TEXT)
        for argv in answer.prepare_iso_commands(self.config.iso, out,
                                                assistant_available=assistant,
                                                mode_file=mode_file):
            self.progress(f"pvechaos: {' '.join(argv)}")
            done = self.run(argv, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise LabError(f"preparing the ISO failed: {done.stderr.strip()[-400:]}")
        return out

    def golden_volumes(self, pool: Any) -> dict[str, str]:
        libvirt = libvirt_module()
        paths = {}
        for machine in self.plan.nodes():
            name = self.plan.golden(machine.name, self.version)
            try:
                self.host.call(f"delete old {name}", pool.storageVolLookupByName(name).delete,
                               0)
            except libvirt.libvirtError:
                pass
            volume = self.host.call(
                f"create {name}", pool.createXML,
                f"<volume><name>{name}</name><capacity unit='GiB'>{self.config.node.disk_gib}"
                "</capacity><target><format type='qcow2'/></target></volume>", 0)
            paths[machine.name] = volume.path()
        return paths

    def install(self, iso: Path, disks: dict[str, str]) -> None:
        """Define and start every node's installer at once; wait until all are done."""
        conn = self.host.conn
        domains = []
        for machine in self.plan.nodes():
            m = self.install_machine(machine)
            old = self.host.find_domain(m.domain)
            if old is not None:
                if old.isActive():
                    old.destroy()
                old.undefine()
            text = xml.domain(self.plan, m, disk=disks[machine.name],
                              install_media=(str(iso), str(self.answer_image(machine.name))))
            domains.append(self.host.call(f"define {m.domain}", conn.defineXML, text))
        for dom in domains:
            self.host.call(f"start the installer in {dom.name()}", dom.create)
        try:
            self.wait_installed(domains)
        finally:
            for dom in domains:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()

    def wait_installed(self, domains: list[Any]) -> None:
        powers_off = answer.powers_off_when_done(self.version)
        deadline = time.monotonic() + self.config.install_timeout_s
        waiting = {d.name(): d for d in domains}
        while waiting:
            for name, dom in list(waiting.items()):
                if not dom.isActive() if powers_off else self.answers_ssh(name):
                    self.progress(f"pvechaos: {name}: installed")
                    del waiting[name]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                logs = ", ".join(self.plan.serial_log(n.rsplit('-', 1)[-1]) for n in waiting)
                raise LabError(f"the PVE installer did not finish within "
                               f"{self.config.install_timeout_s / 60:g} min on "
                               f"{', '.join(waiting)}",
                               hint=f"read the serial logs ({logs}); raise "
                                    "install_timeout_min if the runner is just slow")
            self.progress(f"pvechaos: installing {', '.join(sorted(waiting))} "
                          f"({(deadline - time.monotonic()) / 60:.0f} min left)")
            self.sleep(POLL_S)

    def _answers_ssh(self, domain: str) -> bool:
        """The installed node's sshd accepts a connection (older ISOs reboot into the
        installed system instead of powering off). Only the lab's own addresses."""
        import socket

        node = domain.rsplit("-", 1)[-1]
        try:
            with socket.create_connection((self.plan.machine(node).address, 22), timeout=3):
                return True
        except OSError:
            return False

    def build(self) -> dict[str, str]:
        assistant = self.check_prerequisites()
        pool = ensure_pool(self.host, self.config)
        iso = self.prepare_iso(assistant)
        for node, text in node_answers(self.config, self.plan).items():
            answer.build_answer_image(text, self.answer_image(node), run=self.run)
        ensure_networks(self.host, self.plan)
        disks = self.golden_volumes(pool)
        started = time.monotonic()
        self.install(iso, disks)
        self.progress(f"pvechaos: golden images for PVE {self.version} built in "
                      f"{(time.monotonic() - started) / 60:.1f} min")
        return {node: self.plan.golden(node, self.version) for node in disks}
