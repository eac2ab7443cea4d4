"""`pct` on an embedded node: create, start, stop, shutdown, status, list, config,
destroy, migrate for containers (see pvemu/guest_lifecycle.py for what runs).

Shared with `qm` (GuestCli, parametrised by the guest kind). Output layouts and error
wording follow pve-container's and qemu-server's CLI (src/PVE/CLI/pct.pm, PVE/CLI/qm.pm,
PVE/API2/LXC/Status.pm). HA-managed guests (pve-model.md §12.1): start runs
`ha-manager set <sid> --state started`, stop `ha-manager crm-command stop <sid> 0`,
shutdown `ha-manager crm-command stop <sid> <timeout>`.
"""

from __future__ import annotations

import subprocess
import sys

from pvemu import nodeinfo
from pvemu.cli import options
from pvemu.guest_config import LABEL, VM_DISK_KEYS, GuestError, sid_of
from pvemu.guest_lifecycle import NodeGuests
from pvemu.storage import StorageError


class GuestCli:
    def __init__(self, kind: str, guests: NodeGuests | None = None) -> None:
        self.kind = kind
        self.prog = "pct" if kind == "ct" else "qm"
        self.label = LABEL[kind]
        self._guests = guests

    @property
    def guests(self) -> NodeGuests:
        if self._guests is None:
            info = nodeinfo.load()
            self._guests = NodeGuests(info.name, info=info)
        return self._guests

    def usage(self, text: str) -> str:
        return f"USAGE: {self.prog} {text}"

    @staticmethod
    def vmid(text: str, usage: str) -> int:
        if not text.isdigit() or not 100 <= int(text) <= 999999999:
            raise options.UsageError(f"400 Parameter verification failed.\nvmid: value must "
                                     f"have a minimum value of 100\n{usage}" if text.isdigit()
                                     else f"400 Parameter verification failed.\nvmid: type "
                                     f"check ('integer') failed - got '{text}'\n{usage}")
        return int(text)

    def ha(self, command: list[str], message: str) -> int:
        print(message, flush=True)
        try:
            proc = subprocess.run(command, timeout=60, check=False)
        except FileNotFoundError:
            raise GuestError(f"command '{' '.join(command)}' failed: ha-manager not "
                             "found") from None
        if proc.returncode != 0:
            raise GuestError(f"command '{' '.join(command)}' failed: exit code "
                             f"{proc.returncode}")
        return 0

    # -- commands ----------------------------------------------------------------------
    def cmd_create(self, argv: list[str]) -> int:
        if self.kind == "ct":
            usage = self.usage("create <vmid> <ostemplate> [OPTIONS]")
            args, opts = options.parse(argv, ["vmid", "ostemplate"], {
                "rootfs": "str", "hostname": "str", "net0": "str", "memory": "int",
                "swap": "int", "cores": "int", "start": "bool", "ostype": "str",
                "arch": "str", "unprivileged": "bool", "description": "str",
                "onboot": "bool", "password": "str", "storage": "str"}, usage)
            vmid = self.vmid(args["vmid"], usage)
            if "rootfs" not in opts and "storage" in opts:
                opts["rootfs"] = f"{opts['storage']}:4"
            self.guests.create_ct(vmid, args["ostemplate"], opts)
        else:
            usage = self.usage("create <vmid> [OPTIONS]")
            args, opts = options.parse(argv, ["vmid"], {
                "name": "str", "memory": "int", "cores": "int", "sockets": "int",
                "net0": "str", "ipconfig0": "str", "ostype": "str", "scsihw": "str",
                "start": "bool", "description": "str", "onboot": "bool",
                **{k: "str" for k in VM_DISK_KEYS}}, usage)
            vmid = self.vmid(args["vmid"], usage)
            self.guests.create_vm(vmid, opts)
        if opts.get("start"):
            return self.start(vmid, skiplock=False, migratedfrom=None)
        return 0

    def start(self, vmid: int, skiplock: bool, migratedfrom: str | None) -> int:
        guests = self.guests
        if guests.run_state(vmid) is not None:
            raise GuestError(f"{self.label} {vmid} already running")
        guests.check_quorum()
        sid = sid_of(self.kind, vmid)
        if guests.ha_managed(sid) and migratedfrom is None:
            return self.ha(["ha-manager", "set", sid, "--state", "started"],
                           f"Requesting HA start for {self.label} {vmid}")
        guests.start_guest(self.kind, vmid, skiplock=skiplock)
        return 0

    def cmd_start(self, argv: list[str]) -> int:
        usage = self.usage("start <vmid> [OPTIONS]")
        extra = {"migratedfrom": "str", "timeout": "int"} if self.kind == "vm" else {
            "debug": "bool"}
        args, opts = options.parse(argv, ["vmid"], {"skiplock": "bool", **extra}, usage)
        vmid = self.vmid(args["vmid"], usage)
        migratedfrom = opts.get("migratedfrom")
        return self.start(vmid, bool(opts.get("skiplock")),
                          str(migratedfrom) if migratedfrom else None)

    def cmd_stop(self, argv: list[str]) -> int:
        usage = self.usage("stop <vmid> [OPTIONS]")
        extra = {"timeout": "int", "keepActive": "bool", "migratedfrom": "str",
                 "overrule-shutdown": "bool"} if self.kind == "vm" else {
            "overrule-shutdown": "bool"}
        args, opts = options.parse(argv, ["vmid"], {"skiplock": "bool", **extra}, usage)
        vmid = self.vmid(args["vmid"], usage)
        guests = self.guests
        sid = sid_of(self.kind, vmid)
        if self.kind == "ct" and guests.run_state(vmid) is None:
            raise GuestError(f"CT {vmid} not running")
        if guests.ha_managed(sid) and not opts.get("migratedfrom"):
            return self.ha(["ha-manager", "crm-command", "stop", sid, "0"],
                           f"Requesting HA stop for {self.label} {vmid}")
        guests.load(self.kind, vmid)
        guests.stop_guest(self.kind, vmid, 0, missing_ok=self.kind == "vm")
        return 0

    def cmd_shutdown(self, argv: list[str]) -> int:
        usage = self.usage("shutdown <vmid> [OPTIONS]")
        extra = {"forceStop": "bool", "skiplock": "bool", "keepActive": "bool"}
        args, opts = options.parse(argv, ["vmid"], {"timeout": "int", **extra}, usage)
        vmid = self.vmid(args["vmid"], usage)
        timeout = int(opts.get("timeout", 60))  # type: ignore[arg-type]
        guests = self.guests
        sid = sid_of(self.kind, vmid)
        if guests.run_state(vmid) is None:
            raise GuestError(f"{self.label} {vmid} not running")
        if guests.ha_managed(sid):
            return self.ha(["ha-manager", "crm-command", "stop", sid, str(timeout)],
                           f"Requesting HA stop for {self.label} {vmid}")
        guests.load(self.kind, vmid)
        guests.stop_guest(self.kind, vmid, timeout)
        return 0

    def cmd_status(self, argv: list[str]) -> int:
        usage = self.usage("status <vmid> [OPTIONS]")
        args, opts = options.parse(argv, ["vmid"], {"verbose": "bool"}, usage)
        vmid = self.vmid(args["vmid"], usage)
        status = self.guests.status(self.kind, vmid)
        print(f"status: {status}")
        if opts.get("verbose"):
            state = self.guests.run_state(vmid)
            print(f"vmid: {vmid}")
            if state:
                print(f"pid: {state.pid}")
        return 0

    def cmd_list(self, argv: list[str]) -> int:
        options.parse(argv, [], {"full": "bool"} if self.kind == "vm" else {},
                      self.usage("list"))
        rows = self.guests.list(self.kind)
        if not rows:
            return 0
        if self.kind == "ct":
            print(f"{'VMID':<10} {'Status':<10} {'Lock':<12} {'Name':<20}")
            for r in rows:
                print(f"{r['vmid']:<10} {r['status']:<10} {r['lock']:<12} {r['name']:<20}")
        else:
            print(f"{'VMID':>10} {'NAME':<20} {'STATUS':<10} {'MEM(MB)':<10} "
                  f"{'BOOTDISK(GB)':>12} {'PID':<10}")
            for r in rows:
                print(f"{r['vmid']:>10} {r['name']:<20} {r['status']:<10} "
                      f"{r['maxmem'] // (1024 * 1024):<10} {r['maxdisk'] / 1024 ** 3:>12.2f} "
                      f"{r['pid']:<10}")
        return 0

    def cmd_config(self, argv: list[str]) -> int:
        usage = self.usage("config <vmid> [OPTIONS]")
        args, _ = options.parse(argv, ["vmid"], {"current": "bool", "snapshot": "str"},
                                usage)
        vmid = self.vmid(args["vmid"], usage)
        conf = self.guests.load(self.kind, vmid)
        values = dict(conf.values)
        if conf.description:
            values["description"] = "\n".join(conf.description)
        for key in sorted(values):
            print(f"{key}: {values[key]}")
        return 0

    def cmd_destroy(self, argv: list[str]) -> int:
        usage = self.usage("destroy <vmid> [OPTIONS]")
        args, opts = options.parse(argv, ["vmid"], {
            "purge": "bool", "force": "bool", "skiplock": "bool",
            "destroy-unreferenced-disks": "bool"}, usage)
        vmid = self.vmid(args["vmid"], usage)
        self.guests.destroy(self.kind, vmid, purge=bool(opts.get("purge")))
        return 0

    def cmd_migrate(self, argv: list[str]) -> int:
        usage = self.usage("migrate <vmid> <target> [OPTIONS]")
        flag = "online" if self.kind == "vm" else "restart"
        args, opts = options.parse(argv, ["vmid", "target"], {
            flag: "bool", "timeout": "int", "with-local-disks": "bool", "force": "bool"},
            usage)
        vmid = self.vmid(args["vmid"], usage)
        self.guests.migrate_guest(self.kind, vmid, args["target"], bool(opts.get(flag)))
        return 0

    def main(self, argv: list[str] | None = None) -> int:
        commands = {"create": self.cmd_create, "start": self.cmd_start,
                    "stop": self.cmd_stop, "shutdown": self.cmd_shutdown,
                    "status": self.cmd_status, "list": self.cmd_list,
                    "config": self.cmd_config, "destroy": self.cmd_destroy,
                    "migrate": self.cmd_migrate}
        return options.dispatch(self.prog, commands, sys.argv[1:] if argv is None else argv,
                                (GuestError, StorageError))

def main(argv: list[str] | None = None) -> int:
    return GuestCli("ct").main(argv)


if __name__ == "__main__":
    sys.exit(main())
