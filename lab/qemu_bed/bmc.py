"""Real BMCs for the qemu test bed's libvirt domains: sushy-tools' Redfish emulator and
virtualbmc's IPMI servers, started and stopped around a test.

``BmcServers(domains, ...)`` as a context manager (or ``start()``/``stop()``):

- **Redfish**: one ``sushy-emulator`` over HTTPS with a self-signed certificate made here
  (python ``cryptography``; its subject names the listening address), HTTP basic auth from
  an htpasswd file (bcrypt, the only digest sushy reads), serving only the given domains
  (``SUSHY_EMULATOR_ALLOWED_INSTANCES``: their names and UUIDs, so nothing else defined on
  the host is exposed). sushy names each ComputerSystem by the domain's **UUID**
  (``/redfish/v1/Systems/<uuid>``; a name is answered with a 307 to the UUID path):
  ``system_id(domain)`` gives it.
- **IPMI**: one ``vbmcd --foreground`` with its own ``VIRTUALBMC_CONFIG`` and config dir,
  one BMC per domain, each on its own UDP port on the same address; vbmcd's control
  socket (ZMQ, always on 127.0.0.1) gets a free port of its own.

The address: the caller's, which must be 127.0.0.1 or an address of this machine inside
the lab range 198.18.0.0/15. tests/qemu/test_bmc_real.py binds the qemu bed's management
bridge address (the lab's ``plan.host_address``, e.g. 198.19.172.1: the nodes' own
network, as a BMC network would be) for the bed's VMs, and 127.0.0.1 for its bare
domains, which have no lab network and so no bridge to bind; loopback keeps those BMCs
unreachable from anywhere else.

Secrets: the password is read from the environment variable ``password_env`` names. It is
never put in argv or a log: the htpasswd file holds its bcrypt hash; virtualbmc keeps each
BMC's user and password in its config file (that is where vbmcd reads them), inside this
bed's own directory (mode 0700, files 0600), removed at stop. ipmitool gets it through
``IPMI_PASSWORD`` (``-E``).

Everything is bounded: the readiness waits (``harness.waits.wait_until``) and the stop
(SIGTERM to each server's own process group, SIGKILL after a grace period); the
directory goes in the same ``finally``.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError, LabError
from harness.waits import NotYet, wait_until
from lab import run_guardian

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
INSTALL_HINT = "pip install -e '.[qemubed]' (sushy-tools, virtualbmc)"


def _need_module(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise LabError(f"{package} is not installed for {sys.executable}",
                       hint=INSTALL_HINT)


def _check_address(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(f"BMC address {address!r} is not an IP address",
                          hint="use 127.0.0.1 or the lab bridge's address") from None
    if not (str(ip) == "127.0.0.1" or (ip.version == 4 and ip in LAB_RANGE)):
        raise ConfigError(f"BMC address {address} is outside the lab's range",
                          hint=f"use 127.0.0.1 or an address in {LAB_RANGE} (the lab "
                               "bridge's)")
    return str(ip)


def _free_port(address: str, kind: int, port: int = 0) -> int:
    """``port`` if it can be bound on ``address`` (0: any free one), else a LabError."""
    what = "TCP" if kind == socket.SOCK_STREAM else "UDP"
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((address, port))
        except OSError as e:
            if port:
                raise LabError(f"{what} port {port} on {address} is taken ({e.strerror})",
                               hint=f"choose another port, or stop what listens there "
                                    f"(ss -{'t' if what == 'TCP' else 'u'}lnp "
                                    f"sport = {port})") from None
            raise LabError(f"cannot bind a {what} port on {address}: {e.strerror}",
                           hint="is the address one of this machine's? (ip -4 addr)") from None
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n    ".join(text) or "(empty log)"


def make_certificate(address: str, cert: Path, key: Path) -> None:
    """A self-signed certificate for ``address`` (CN and IP SAN), valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pvechaos test BMC")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .sign(private, hashes.SHA256()))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    key.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@dataclass
class _Server:
    name: str
    process: subprocess.Popen
    log: Path

    def dead(self) -> str | None:
        if self.process.poll() is None:
            return None
        return (f"{self.name} exited with {self.process.returncode}; its log "
                f"({self.log}):\n    {_tail(self.log)}")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to the server's own process group (it was started in a session of its
        own), SIGKILL after ``grace_s``."""
        pgid = self.process.pid
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            try:
                self.process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
            # children (vbmcd's per-BMC processes) may outlive the leader for a moment
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return


@dataclass
class BmcServers:
    """sushy-emulator and vbmcd serving ``domains`` of libvirt ``uri`` on ``address``."""

    domains: tuple[str, ...]
    user: str = "admin"
    password_env: str = "PVECHAOS_BMC_PASSWORD"
    address: str = "127.0.0.1"
    uri: str = "qemu:///system"
    redfish_port: int = 0  # 0: a free one
    ipmi_ports: dict[str, int] = field(default_factory=dict)  # missing: free ones
    parent_dir: Path | None = None  # where the bed's directory goes (default: $TMPDIR)
    ready_timeout_s: float = 60.0
    workdir: Path | None = field(default=None, init=False)
    uuids: dict[str, str] = field(default_factory=dict, init=False)
    _servers: list[_Server] = field(default_factory=list, init=False)
    _guarded: run_guardian.Guarded | None = field(default=None, init=False)  # its record

    # -- what the tests use -----------------------------------------------------------
    @property
    def redfish_url(self) -> str:
        return f"https://{self.address}:{self.redfish_port}"

    def system_id(self, domain: str) -> str:
        """The Redfish ComputerSystem id sushy gives ``domain``: its libvirt UUID."""
        return self.uuids[domain]

    @property
    def certificate(self) -> Path:
        assert self.workdir is not None, "start() first"
        return self.workdir / "redfish.crt"

    # -- life cycle -------------------------------------------------------------------
    def __enter__(self) -> BmcServers:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not self.domains:
            raise ConfigError("BmcServers needs at least one libvirt domain",
                              hint="pass the names of the domains the BMCs switch")
        self.address = _check_address(self.address)
        _need_module("sushy_tools", "sushy-tools")
        _need_module("virtualbmc", "virtualbmc")
        _need_module("libvirt", "libvirt-python")
        if shutil.which("ipmitool") is None:
            raise LabError("ipmitool is not installed (the IPMI readiness check and the "
                           "IPMI driver run it)", hint="apt-get install ipmitool")
        password = os.environ.get(self.password_env)
        if not password:
            raise ConfigError(f"the BMC password variable {self.password_env} is not set",
                              hint=f"export {self.password_env}=... before starting the BMCs")
        self.uuids = self._domain_uuids()
        self.redfish_port = _free_port(self.address, socket.SOCK_STREAM, self.redfish_port)
        self.ipmi_ports = {d: _free_port(self.address, socket.SOCK_DGRAM,
                                         self.ipmi_ports.get(d, 0)) for d in self.domains}
        if len(set(self.ipmi_ports.values())) != len(self.domains):
            raise ConfigError(f"two BMCs were given one UDP port: {self.ipmi_ports}",
                              hint="give each domain its own IPMI port")
        parent = self.parent_dir or Path(tempfile.gettempdir())
        self.workdir = Path(tempfile.mkdtemp(prefix="pvechaos-bmc-", dir=parent))
        # a run killed from here on: its guardian stops them
        self._guarded = run_guardian.guard("bmc-servers", "lab.qemu_bed.bmc:stop_recorded",
                                           groups=[], workdir=str(self.workdir))
        try:
            self._start_redfish(password)
            self._start_ipmi(password)
            self._wait_ready(password)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Both servers and the bed's directory, whatever state start() left."""
        try:
            for server in reversed(self._servers):
                server.stop()
        finally:
            self._servers.clear()
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None
            self._guarded = run_guardian.release(self._guarded)

    # -- the pieces -------------------------------------------------------------------
    def _domain_uuids(self) -> dict[str, str]:
        import libvirt

        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as e:
            raise LabError(f"cannot connect to libvirt at {self.uri}: {e}",
                           hint="is libvirtd running? (virtlogd -d; libvirtd -d)") from None
        try:
            found = {}
            for name in self.domains:
                try:
                    found[name] = conn.lookupByName(name).UUIDString()
                except libvirt.libvirtError:
                    raise ConfigError(f"libvirt domain {name} is not defined on {self.uri}",
                                      hint="define the domain before starting its BMCs"
                                      ) from None
            return found
        finally:
            conn.close()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> _Server:
        assert self.workdir is not None
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       cwd=self.workdir)
        server = _Server(name, process, log)
        self._servers.append(server)
        if self._guarded is not None:
            self._guarded.update(groups=[s.process.pid for s in self._servers])
        return server

    def _start_redfish(self, password: str) -> None:
        import bcrypt

        assert self.workdir is not None
        make_certificate(self.address, self.workdir / "redfish.crt",
                         self.workdir / "redfish.key")
        digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
        _write_private(self.workdir / "htpasswd", f"{self.user}:{digest}\n")
        allowed = [*self.domains, *self.uuids.values()]
        settings = {
            "SUSHY_EMULATOR_LISTEN_IP": self.address,
            "SUSHY_EMULATOR_LISTEN_PORT": self.redfish_port,
            "SUSHY_EMULATOR_SSL_CERT": str(self.workdir / "redfish.crt"),
            "SUSHY_EMULATOR_SSL_KEY": str(self.workdir / "redfish.key"),
            "SUSHY_EMULATOR_AUTH_FILE": str(self.workdir / "htpasswd"),
            "SUSHY_EMULATOR_LIBVIRT_URI": self.uri,
            "SUSHY_EMULATOR_ALLOWED_INSTANCES": allowed,
            "SUSHY_EMULATOR_IGNORE_BOOT_DEVICE": True,
        }
        conf = self.workdir / "sushy.conf"
        _write_private(conf, "".join(f"{k} = {v!r}\n" for k, v in settings.items()))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SUSHY_EMULATOR_", "OS_CLOUD"))}
        env.pop(self.password_env, None)
        # sushy keeps state (indicators, volumes) in sqlite files under $TMPDIR/sushy-emulator;
        # a shared one would be locked by another emulator: this bed's own directory instead
        env["TMPDIR"] = str(self.workdir)
        self._spawn("sushy-emulator", [sys.executable, "-m", "sushy_tools.emulator.main",
                                       "--config", str(conf)], env)

    def _start_ipmi(self, password: str) -> None:
        assert self.workdir is not None
        home = self.workdir / "vbmc"
        home.mkdir(mode=0o700)
        control_port = _free_port("127.0.0.1", socket.SOCK_STREAM)
        _write_private(home / "virtualbmc.conf",
                       "[default]\n"
                       f"config_dir = {home / 'bmcs'}\n"
                       f"pid_file = {home / 'vbmcd.pid'}\n"
                       f"server_port = {control_port}\n"
                       "[log]\n"
                       f"logfile = {self.workdir / 'vbmcd-bmcs.log'}\n"
                       "[ipmi]\nsession_timeout = 1\n")
        for domain, port in self.ipmi_ports.items():
            bmc = home / "bmcs" / domain
            bmc.mkdir(parents=True, mode=0o700)
            _write_private(bmc / "config",
                           "[VirtualBMC]\n"
                           f"username = {self.user}\n"
                           f"password = {password}\n"
                           f"address = {self.address}\n"
                           f"port = {port}\n"
                           f"domain_name = {domain}\n"
                           f"libvirt_uri = {self.uri}\n"
                           "active = True\n")
        env = {**os.environ, "VIRTUALBMC_CONFIG": str(home / "virtualbmc.conf")}
        env.pop(self.password_env, None)
        self._spawn("vbmcd", [sys.executable, "-m", "virtualbmc.cmd.vbmcd", "--foreground"],
                    env)

    def _wait_ready(self, password: str) -> None:
        def first_death() -> str | None:
            return next((d for s in self._servers if (d := s.dead())), None)

        def redfish_ready():
            if (death := first_death()) is not None:
                return ("dead", death)
            context = ssl.create_default_context(cafile=str(self.certificate))
            try:
                with urllib.request.urlopen(f"{self.redfish_url}/redfish/v1/", timeout=5,
                                            context=context) as answer:
                    return ("ok", answer.status)
            except (urllib.error.URLError, OSError) as e:
                return NotYet(f"sushy-emulator: {e}")

        def ipmi_ready(domain: str, port: int):
            if (death := first_death()) is not None:
                return ("dead", death)
            argv = ["ipmitool", "-I", "lanplus", "-H", self.address, "-p", str(port),
                    "-U", self.user, "-E", "-N", "1", "-R", "1", "chassis", "power", "status"]
            done = subprocess.run(argv, env={**os.environ, "IPMI_PASSWORD": password},
                                  capture_output=True, text=True, timeout=15, check=False)
            if done.returncode == 0:
                return ("ok", done.stdout.strip())
            return NotYet(f"vbmcd for {domain} on UDP {port}: "
                          f"{(done.stderr or done.stdout).strip()[:200]}")

        checks = [("sushy-emulator's Redfish service", redfish_ready)]
        checks += [(f"virtualbmc's BMC for {d} (UDP {p})",
                    lambda d=d, p=p: ipmi_ready(d, p)) for d, p in self.ipmi_ports.items()]
        for what, check in checks:
            state, detail = wait_until(what, check, timeout_s=self.ready_timeout_s,
                                       interval_s=0.5)
            if state == "dead":
                raise LabError(f"a BMC server died while starting: {detail}",
                               hint=f"see the log; {INSTALL_HINT}; is the port free?")


def stop_recorded(*, groups: list[int], workdir: str) -> None:
    """``stop`` for a run that is gone (lab/run_guardian.py): every process of a server's
    group (a session of its own, led by the server) killed, then the directory removed.
    A process counts only when it also runs in ``workdir`` (the servers' cwd): a group id
    reused by someone else since is never touched. SIGKILL at once: nothing of a dead
    run's BMCs needs a graceful end."""
    wanted = set(groups)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            pgid = os.getpgid(int(proc.name))
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if pgid in wanted and cwd == workdir:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
    shutil.rmtree(workdir, ignore_errors=True)
