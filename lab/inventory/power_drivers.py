"""Power switches for the real nodes of an existing cluster, through their BMCs.

Two drivers with one interface (`PowerDriver`): `IpmiPower` runs ipmitool (IPMI over LAN;
the password travels only in the IPMI_PASSWORD environment variable, never in argv) and
`RedfishPower` talks to the BMC's Redfish service. Powering off is abrupt (no graceful
shutdown): that is the point of a power-cut test. Subprocesses and HTTP are injected
(`run`, `transport`) so the unit tests never reach a real BMC.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urljoin, urlsplit

from harness.errors import ConfigError, LabError

Transport = Callable[[str, str, dict | None], tuple[int, dict]]

UNREACHABLE_HINT = "is the BMC address right and reachable from this machine?"


def _credentials_hint(node: str) -> str:
    return f"check power.user and power.password_env in the inventory for {node}"


@runtime_checkable
class PowerDriver(Protocol):
    """What the inventory lab needs to cut and restore a node's power."""

    def describe(self) -> str: ...
    def check(self) -> None: ...
    def is_on(self) -> bool: ...
    def power_off(self) -> None: ...
    def power_on(self) -> None: ...

    def shutdown(self) -> None:
        """The power button pressed briefly: the OS shuts down cleanly (ACPI)."""

    def reset(self) -> None:
        """The reset button: no shutdown, the machine boots again at once."""


# ---------------------------------------------------------------------------------- IPMI

# ipmitool's words for a refused user name or password (RAKP is the RMCP+ key exchange).
# ipmitool prints the RAKP lines only with -v: without it, a wrong password is only
# "Unable to establish IPMI v2 / RMCP+ session", the same words as an unreachable BMC
# (measured against virtualbmc 3.3: wrong password 0.02 s, nobody there 20 s).
_IPMI_BAD_CREDENTIALS = ("rakp 2 hmac is invalid", "unauthorized name", "invalid user name")
_IPMI_NO_SESSION = "unable to establish ipmi v2 / rmcp+ session"
# some BMCs (virtualbmc's pyghmi) stay silent when the user name is unknown
_IPMI_SILENT_RAKP1 = "no response from rakp 1 message"


class IpmiPower:
    """A node's power through `ipmitool chassis power ...`."""

    def __init__(self, node: str, host: str, user: str, password: str, *,
                 interface: str = "lanplus", port: int = 623,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                 timeout_s: float = 20) -> None:
        if not host:
            raise ConfigError(f"{node}: no BMC address for IPMI",
                              hint=f"set power.host in the inventory for {node}")
        self.node, self.host, self.user, self._password = node, host, user, password
        self.interface, self.port, self._run, self.timeout_s = interface, port, run, timeout_s

    def describe(self) -> str:
        where = self.host if self.port == 623 else f"{self.host}:{self.port}"
        return f"IPMI {self.interface} {where} as {self.user}"

    def argv(self, *command: str) -> list[str]:
        return ["ipmitool", "-I", self.interface, "-H", self.host, "-p", str(self.port),
                "-U", self.user, "-E", *command]

    # a failed session that ended sooner than this came from a BMC that answered: worth
    # one verbose `chassis power status` to tell a refused password from silence
    diagnose_within_s = 5.0

    def _call(self, argv: list[str], shown: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "IPMI_PASSWORD": self._password, "LC_ALL": "C"}
        try:
            return self._run(argv, env=env, capture_output=True, text=True,
                             timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            raise LabError(f"{self.node}: ipmitool is not installed on this machine",
                           hint="apt-get install ipmitool") from None
        except subprocess.TimeoutExpired:
            raise LabError(f"{self.node}: no answer within {self.timeout_s:g} s from the BMC "
                           f"at {self.host} (ipmitool {shown})", hint=UNREACHABLE_HINT) from None

    def _ipmitool(self, *command: str) -> str:
        shown = " ".join(command)
        started = time.monotonic()
        done = self._call(self.argv(*command), shown)
        took = time.monotonic() - started
        out, err = (done.stdout or "").strip(), (done.stderr or "").strip()
        if done.returncode == 0:
            return out
        seen = err or out or "(no output)"
        low = seen.lower()
        if _IPMI_NO_SESSION in low and took < self.diagnose_within_s and not any(
                clue in low for clue in _IPMI_BAD_CREDENTIALS):
            # no session, and quickly: ask again verbosely, with a command that switches
            # nothing (the failed one never ran: no session, no command)
            verbose = self._call(["ipmitool", "-v", *self.argv("chassis", "power",
                                                               "status")[1:]], shown)
            said = [line.strip("> ").strip() for line in (verbose.stderr or "").splitlines()
                    if any(clue in line.lower() for clue in _IPMI_BAD_CREDENTIALS)]
            if said:
                seen, low = f"{seen} (ipmitool -v: {said[0]})", low + " " + said[0].lower()
        if any(clue in low for clue in _IPMI_BAD_CREDENTIALS):
            raise ConfigError(f"{self.node}: the BMC at {self.host} refused the user name or "
                              f"password (ipmitool {shown}): {seen}",
                              hint=_credentials_hint(self.node))
        if _IPMI_NO_SESSION in low:
            silent = (" (it did not answer the session's first step, as a BMC that does not "
                      "know the user name may do)") if _IPMI_SILENT_RAKP1 in low else ""
            raise LabError(f"{self.node}: the BMC did not accept a session: wrong user/password, "
                           f"or the BMC is unreachable{silent} (ipmitool {shown} against "
                           f"{self.host}): {seen}",
                           hint=f"{_credentials_hint(self.node)}; {UNREACHABLE_HINT}")
        raise LabError(f"{self.node}: ipmitool {shown} against {self.host} exited with "
                       f"{done.returncode}: {seen}", hint=UNREACHABLE_HINT)

    def is_on(self) -> bool:
        out = self._ipmitool("chassis", "power", "status")
        if out == "Chassis Power is on":
            return True
        if out == "Chassis Power is off":
            return False
        raise LabError(f"{self.node}: unexpected answer from the BMC at {self.host} to "
                       f"`chassis power status`: {out or '(nothing)'!r}",
                       hint="expected 'Chassis Power is on' or 'Chassis Power is off'")

    def check(self) -> None:
        self.is_on()

    def power_off(self) -> None:
        self._ipmitool("chassis", "power", "off")

    def power_on(self) -> None:
        self._ipmitool("chassis", "power", "on")

    def shutdown(self) -> None:
        self._ipmitool("chassis", "power", "soft")

    def reset(self) -> None:
        self._ipmitool("chassis", "power", "reset")


# ------------------------------------------------------------------------------- Redfish

def _validate_base_url(node: str, base_url: str) -> str:
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{node}: power.url {problem}",
                           hint=f"set power.url for {node} to the BMC root, e.g. "
                                "https://10.0.0.31")
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError as e:
        raise bad(f"{base_url!r} is not a valid URL ({e})") from None
    if parts.username is not None or parts.password is not None:
        raise bad("must not contain credentials (use power.user and power.password_env)")
    if parts.scheme not in ("https", "http"):
        raise bad(f"{base_url!r} must start with https:// or http://")
    if not parts.hostname:
        raise bad(f"{base_url!r} names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad(f"{base_url!r} must have no path (the driver adds /redfish/v1)")
    return f"{parts.scheme}://{parts.netloc}"


def urllib_transport(node: str, user: str, password: str, *, verify_tls: bool = True,
                     timeout_s: float = 20) -> Transport:
    """The real transport: urllib with HTTP basic auth and JSON bodies."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    context = ssl.create_default_context()
    if not verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    def parse(raw: bytes) -> Any:
        return json.loads(raw) if raw.strip() else {}

    def transport(method: str, url: str, body: dict | None) -> tuple[int, dict]:
        headers = {"Authorization": f"Basic {token}", "Accept": "application/json",
                   "OData-Version": "4.0"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s, context=context) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            try:
                parsed = parse(e.read())
            except (ValueError, OSError):
                parsed = {}
            return e.code, parsed if isinstance(parsed, dict) else {}
        except urllib.error.URLError as e:
            if isinstance(e.reason, ssl.SSLCertVerificationError):
                raise ConfigError(
                    f"{node}: the Redfish service at {url} has a certificate this machine "
                    f"does not trust: {e.reason.verify_message or e.reason}",
                    hint=f"trust the BMC's certificate (the system's CA store, or "
                         f"SSL_CERT_FILE), or set power.verify_tls: false for {node} in the "
                         "inventory") from e
            raise LabError(f"{node}: cannot reach the Redfish service at {url}: {e.reason}",
                           hint=UNREACHABLE_HINT) from e
        except TimeoutError as e:
            raise LabError(f"{node}: cannot reach the Redfish service at {url}: "
                           f"no answer within {timeout_s:g} s", hint=UNREACHABLE_HINT) from e
        except OSError as e:
            raise LabError(f"{node}: cannot reach the Redfish service at {url}: {e}",
                           hint=UNREACHABLE_HINT) from e
        try:
            parsed = parse(raw)
        except ValueError:
            raise LabError(f"{node}: {method} {url} answered {status} with something that is "
                           f"not JSON: {raw[:200]!r}", hint="is power.url a Redfish BMC?") from None
        return status, parsed if isinstance(parsed, dict) else {}

    return transport


def _error_text(body: dict) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    texts = [str(error["message"])] if error.get("message") else []
    for info in error.get("@Message.ExtendedInfo") or []:
        if isinstance(info, dict) and info.get("Message") and info["Message"] not in texts:
            texts.append(str(info["Message"]))
    return "; ".join(texts)


class RedfishPower:
    """A node's power through the BMC's Redfish ComputerSystem.Reset action."""

    SYSTEMS = "/redfish/v1/Systems"

    def __init__(self, node: str, base_url: str, user: str, password: str, *,
                 system_id: str | None = None, verify_tls: bool = True,
                 transport: Transport | None = None, timeout_s: float = 20) -> None:
        self.node, self.user, self.system_id = node, user, system_id
        self.base_url = _validate_base_url(node, base_url)
        self.verify_tls, self.timeout_s = verify_tls, timeout_s
        self._transport = transport or urllib_transport(
            node, user, password, verify_tls=verify_tls, timeout_s=timeout_s)
        self._system: str | None = None

    def describe(self) -> str:
        system = f" system {self.system_id}" if self.system_id else ""
        unverified = not self.verify_tls and self.base_url.startswith("https")
        tls = " (TLS not verified)" if unverified else ""
        return f"Redfish {self.base_url}{system} as {self.user}{tls}"

    def _request(self, method: str, path: str, body: dict | None = None,
                 ok: tuple[int, ...] = (200,)) -> dict:
        url = urljoin(self.base_url + "/", path)
        status, answer = self._transport(method, url, body)
        if status in ok:
            return answer if isinstance(answer, dict) else {}
        said = _error_text(answer)
        said = f": {said}" if said else ""
        if status in (401, 403):
            raise ConfigError(f"{self.node}: the Redfish service at {self.base_url} refused "
                              f"the credentials of {self.user!r} (HTTP {status}{said})",
                              hint=_credentials_hint(self.node))
        if status == 404:
            raise LabError(f"{self.node}: {method} {url} was not found (HTTP 404{said})",
                           hint=f"is power.url of {self.node} the BMC's Redfish root, "
                                "and power.system right?")
        raise LabError(f"{self.node}: {method} {url} answered HTTP {status}{said}",
                       hint="see the BMC's message; is the BMC busy or the host locked?")

    def system_path(self) -> str:
        """The ComputerSystem's path, found once from /redfish/v1/Systems."""
        if self._system is None:
            listing = self._request("GET", self.SYSTEMS)
            paths = [m["@odata.id"].rstrip("/") for m in listing.get("Members") or []
                     if isinstance(m, dict) and isinstance(m.get("@odata.id"), str)]
            ids = [p.rsplit("/", 1)[-1] for p in paths]
            if not paths:
                raise LabError(f"{self.node}: the Redfish service at {self.base_url} lists no "
                               f"systems under {self.SYSTEMS}", hint="is power.url right?")
            if self.system_id is not None:
                found = [p for p, i in zip(paths, ids, strict=True) if i == self.system_id]
                if not found:
                    found = self._by_name(paths, ids)
                self._system = found[0]
            elif len(paths) == 1:
                self._system = paths[0]
            else:
                raise ConfigError(f"{self.node}: the Redfish service at {self.base_url} has "
                                  f"several systems: {', '.join(ids)}",
                                  hint=f"set power.system for {self.node} to one of those")
        return self._system

    def _by_name(self, paths: list[str], ids: list[str]) -> list[str]:
        """The one system whose Name is power.system: sushy-tools' emulator lists a
        libvirt domain by its UUID and names it after the domain. Asked only when no id
        matched; a ConfigError listing every id and name otherwise."""
        names = []
        for path in paths[:64]:
            try:
                name = self._request("GET", path).get("Name")
            except LabError:  # one member that does not answer hides no other
                name = None
            names.append(name if isinstance(name, str) else None)
        found = [p for p, n in zip(paths, names, strict=False) if n == self.system_id]
        if len(found) == 1:
            return found
        listed = ", ".join(f"{i} ({n})" if n and n != i else i
                           for i, n in zip(ids, names + [None] * len(ids), strict=False))
        several = f" names {len(found)} systems" if found else " not found"
        raise ConfigError(f"{self.node}: Redfish system {self.system_id!r}{several} at "
                          f"{self.base_url}; it has: {listed}",
                          hint=f"set power.system for {self.node} to one of those ids")

    def is_on(self) -> bool:
        state = self._request("GET", self.system_path()).get("PowerState")
        if state in ("On", "PoweringOn"):
            return True
        if state in ("Off", "PoweringOff"):
            return False
        raise LabError(f"{self.node}: unexpected PowerState {state!r} from {self.base_url}"
                       f"{self.system_path()}", hint="expected On, Off, PoweringOn, PoweringOff")

    def check(self) -> None:
        self.is_on()

    def _reset(self, reset_type: str) -> None:
        path = self.system_path()
        system = self._request("GET", path)
        action = (system.get("Actions") or {}).get("#ComputerSystem.Reset") or {}
        allowed = action.get("ResetType@Redfish.AllowableValues")
        if allowed is not None and reset_type not in allowed:
            raise LabError(f"{self.node}: the BMC at {self.base_url} does not offer ResetType "
                           f"{reset_type!r}; it allows: {', '.join(map(str, allowed)) or 'none'}",
                           hint="use IPMI for this node, or update the BMC firmware")
        target = action.get("target") or f"{path}/Actions/ComputerSystem.Reset"
        self._request("POST", target, {"ResetType": reset_type}, ok=(200, 202, 204))

    def power_off(self) -> None:
        self._reset("ForceOff")

    def power_on(self) -> None:
        self._reset("On")

    def shutdown(self) -> None:
        self._reset("GracefulShutdown")

    def reset(self) -> None:
        self._reset("ForceRestart")
