"""One exception tree for everything pvechaos reports.

Every error says what was expected, what was seen, where, and how to fix it. Lower-layer
exceptions (paramiko, OSError, subprocess) are translated at the edge and chained.
"""

from __future__ import annotations


class PvechaosError(Exception):
    """Base of every pvechaos error. Its text is redacted (harness/report/redact.py): a
    message quotes commands and their output (a `pvecm add --password`, a token on a
    command line), and it reaches the terminal, JUnit, Allure and metrics.json."""

    redacted = True  # ConfigError's messages name the user's fields, and are kept

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        from harness.report.redact import redact  # here: harness.report imports errors

        self.hint = hint
        text = message if not hint else f"{message}\n  fix: {hint}"
        super().__init__(redact(text) if self.redacted else text)


class ConfigError(PvechaosError):
    """A user's input is wrong: an option, a lab spec, an inventory, a node name. Not
    redacted: its messages name the field at fault (`nodes[0].power.password: holds a
    secret in the file`, `corosync.token: ...`), which redaction would garble, and never
    quote a secret's value (lab/yamlconfig.py refuses a literal password unquoted)."""

    redacted = False


class LabError(PvechaosError):
    """The lab could not do what was asked (boot, power, network). Not a product failure."""


class UnsupportedFault(LabError):
    """The lab has no mechanism for this fault."""


class InterlockError(LabError):
    """A fault was refused because its target is not part of the lab."""


class CommandError(PvechaosError):
    """A command on a node ended with an unexpected exit code."""

    def __init__(self, node: str, command: str, rc: int, stdout: str, stderr: str) -> None:
        self.node, self.command, self.rc = node, command, rc
        self.stdout, self.stderr = stdout, stderr
        seen = (stderr or stdout).strip().splitlines()[-5:]
        super().__init__(
            f"{node}: `{command}` exited with {rc}; last output:\n    "
            + "\n    ".join(seen or ["(nothing)"])
        )


class NodeUnreachable(PvechaosError):
    """SSH to a node could not be established or broke down."""

    def __init__(self, node: str, address: str, reason: str) -> None:
        self.node, self.address, self.reason = node, address, reason
        super().__init__(f"{node} ({address}) is unreachable over SSH: {reason}")


class CommandTimeout(PvechaosError):
    """A command on a node gave no complete answer within its deadline."""

    def __init__(self, node: str, command: str, timeout_s: float) -> None:
        self.node, self.command, self.timeout_s = node, command, timeout_s
        super().__init__(f"no answer within {timeout_s:g} s from {node} (`{command}`)")


class ParseError(PvechaosError):
    """Output of a PVE command did not have the expected layout."""

    def __init__(self, what: str, problem: str, text: str) -> None:
        self.text = text
        excerpt = "\n    ".join(text.strip().splitlines()[:12]) or "(empty)"
        super().__init__(f"cannot parse {what}: {problem}; output was:\n    {excerpt}")


class WaitTimeout(PvechaosError, AssertionError):
    """A bounded wait ended without its condition becoming true. Also an assertion: in a
    scenario step it means the cluster did not do what was expected in time (a product
    failure); where the lab is being prepared, the fixture turns it into a LabError."""

    def __init__(self, what: str, timeout_s: float, last_seen: object) -> None:
        self.what, self.timeout_s, self.last_seen = what, timeout_s, last_seen
        super().__init__(
            f"waited {timeout_s:.1f} s for {what}; last seen: {last_seen!s}"
        )
