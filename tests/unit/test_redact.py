"""Evidence attached to reports carries no secrets."""

from __future__ import annotations

import pytest

from harness.report.redact import MASK, redact, redact_tree

KEY = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBhbGljZQ==
-----END OPENSSH PRIVATE KEY-----"""


@pytest.mark.parametrize(("text", "secret"), [
    (KEY, "QyNTUxOQAAACBhbGljZQ=="),
    ("ticket PVE:root@pam:6744A1B2::c2lnbmF0dXJlK3dpdGgvc2xhc2g= ok", "c2lnbmF0dXJl"),
    ("Cookie: PVEAuthCookie=PVE%3Aroot%40pam%3A6744A1B2; path=/", "PVE%3Aroot"),
    ('{"CSRFPreventionToken": "6744A1B2:Zm9vYmFy"}', "6744A1B2:Zm9vYmFy"),
    ("Authorization: PVEAPIToken=root@pam!ci=0b1c9c6e-5f11-4d1a-9a4d-2f7c1e3a9b10",
     "0b1c9c6e-5f11"),
    ("pvecm add 10.0.0.1 --password hunter2 --use_ssh", "hunter2"),
    ("password=hunter2", "hunter2"),
    ('{"password": "hunter2", "user": "root@pam"}', "hunter2"),
    ("ipmi pass: s3cr3t", "s3cr3t"),
    ("secret=abc123def", "abc123def"),
])
def test_secrets_are_masked(text, secret):
    out = redact(text)
    assert secret not in out and MASK in out


def test_what_is_not_secret_is_kept():
    text = ("Nov 25 16:17:10 node1 pve-ha-crm[37]: node 'node1': state changed from "
            "'online' => 'unknown'\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI node1\n"
            "Members[2]: 2 3; tokens lost 1")
    assert redact(text) == text


def test_a_tree_of_strings_is_redacted_in_place_and_keeps_its_types():
    import dataclasses
    from collections import namedtuple

    Pair = namedtuple("Pair", "name value")

    @dataclasses.dataclass(frozen=True)
    class Frame:
        lines: list
        args: list
        style: str = "long"

    frame = Frame(["E   `pvecm add x --password hunter2`"], [Pair("argv", "--token=abc")])
    tree = [("captured log", "password=hunter2"), frame, 3, None]
    out = redact_tree(tree)
    assert out is tree and out[1] is frame  # changed in place
    assert out[0] == ("captured log", f"password={MASK}")
    assert frame.lines == [f"E   `pvecm add x --password {MASK}"]
    assert frame.args == [Pair("argv", f"--token={MASK}")] and type(frame.args[0]) is Pair
    assert out[2:] == [3, None] and frame.style == "long"


def test_a_harness_error_says_no_secret():
    from harness.errors import CommandError

    error = CommandError("node2", "pvecm add 198.18.0.11 --password hunter2", 255, "",
                         "ticket PVE:root@pam:6744A1B2::c2lnbmF0dXJl rejected")
    assert "hunter2" not in str(error) and "c2lnbmF0dXJl" not in str(error)
    assert "--password [REDACTED]" in str(error) and "exited with 255" in str(error)
    assert error.command.endswith("hunter2")  # the attribute is the command as run


def test_a_scenario_action_is_recorded_redacted():
    from harness.clock import Clock
    from harness.faults import FaultInjector
    from harness.lab_api import Capability
    from harness.timeline import Timeline
    from tests.twins import FakeLab

    timeline = Timeline(Clock())
    event = FaultInjector(FakeLab(Capability.POWER), timeline).action(
        "pvecm add 198.18.0.11 --password hunter2", "node2")
    assert event.payload.what == f"pvecm add 198.18.0.11 --password {MASK}"
