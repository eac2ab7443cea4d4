"""Planted secrets never reach a report.

A scenario (written into tmp_path, run as a user runs one: pytest in a subprocess with the
plugin, --alluredir, --junitxml, DEBUG logging) plants secrets made for this run where a
real run carries them: the labs' password variables in its environment, a `pvecm add
--password` join on a node's command line and in its output, an API token on a command
line, a PEM private key and a PVE ticket in the node log the evidence collects. One step
passes, one fails (a failed step carries its error, its captured output and the
evidence). Then tests/secret_scan.py looks for every secret in everything the run left:
the Allure results (attachments, result JSON, environment.properties), metrics.json, the
JUnit XML and the run's stdout and stderr.

The scenario's own Allure calls carry secrets too (a step title with a shell-quoted
password that holds a space, a parameter, an attachment) and the failing step ends
with an error of its own (not the harness's) raised from the harness's: allure-pytest's
writer redacts them (harness/report/allure_redact.py).

The negative control: the failing step also attaches one more secret bare, with no key
or shape a rule could know it by, and the same scan must find exactly that one: the
check is shown able to fail.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import leftovers
from tests.secret_scan import scan_paths, scan_text

REPO = Path(__file__).resolve().parents[2]
NAME, SUBNET = "sec1", "198.18.175.0/24"

# the password variables the libvirt and inventory labs read (README's examples, the qemu
# bed's and its BMCs'): a real run has them in its environment
LAB_PASSWORD_VARIABLES = ("PVECHAOS_ROOT_PASSWORD", "BMC_PASSWORD", "PVECHAOS_BMC_PASSWORD",
                          "PVECHAOS_QBED_ROOT_PASSWORD")

SCENARIO = '''
"""Planted secrets where a real run carries them (tests/integration/test_planted_secrets.py
reads what this run leaves and finds none of them)."""

import os
import shlex

import allure
import pytest

from harness.errors import CommandError

pytestmark = [pytest.mark.story, pytest.mark.usefixtures("quorum_watcher")]
S = os.environ
LOG = "/var/log/pve-cluster.log"  # journalctl -u pve-cluster: in the evidence's node logs


def plant(cluster, faults):
    node = cluster.node(cluster.names[0])
    join = ("pvecm", "add", node.cluster_address, "--password", S["PLANT_JOIN_PASSWORD"])
    faults.action(shlex.join(join), node.name)  # the scenario's own record of what it did
    token = f"PVEAPIToken=root@pam!ci={S['PLANT_API_TOKEN']}"
    ticket = f"PVE:root@pam:{S['PLANT_TICKET_TIME']}::{S['PLANT_TICKET']}"
    # a command line and its output with the join password and the token
    said = node.check("echo", *join, "-H", f"Authorization: {token}")
    assert S["PLANT_JOIN_PASSWORD"] in said and S["PLANT_API_TOKEN"] in said
    # a key and a ticket in the node's log, as a daemon would write them
    stamp = node.check("date", "+%F %T").strip()
    lines = [f"{stamp} pmxcfs[1]: [main] notice: ticket {ticket}",
             f"{stamp} pmxcfs[1]: [main] notice: key follows", *S["PLANT_KEY"].splitlines(),
             f"{stamp} pmxcfs[1]: [main] notice: ran {shlex.join(join)}",
             f"{stamp} pmxcfs[1]: [main] notice: curl -H 'Authorization: {token}'"]
    node.check("sh", "-c", f'printf "%s\\\\n" "$@" >> {LOG}', "sh", *lines)
    return node, join, token, ticket


def test_planted_and_passing(cluster, faults):
    node, join, token, ticket = plant(cluster, faults)
    # the scenario's own Allure calls: a step's title, a parameter, an attachment
    spaced = shlex.join(["pvecm", "add", node.cluster_address, "--password",
                         S["PLANT_SPACED_1"] + " " + S["PLANT_SPACED_2"]])
    with allure.step(f"join: {spaced}"):
        allure.dynamic.parameter("api", token)
        allure.attach(f"{spaced}\\nticket={ticket}", name="the scenario's own notes")


def test_planted_and_failing(cluster, faults):
    node, join, token, ticket = plant(cluster, faults)
    # the negative control: a secret bare, with nothing a rule could know it by: it
    # must be found
    allure.attach(S["PLANT_CONTROL"], name="unredacted on purpose",
                  attachment_type=allure.attachment_type.TEXT)
    # fails with the command and its output in the error: what a failed join shows,
    # wrapped in an error of the scenario's own (Allure's message quotes that one)
    try:
        node.check("sh", "-c", f"echo {shlex.quote(shlex.join(join))}; "
                   f"echo {shlex.quote(token)} {shlex.quote(ticket)} >&2; exit 3")
    except CommandError as exc:
        raise RuntimeError(f"join failed: secret={S['PLANT_OWN_ERROR']}") from exc
'''


def planted() -> dict[str, str]:
    """Secrets unique to this run, each in the shape a real one has."""
    body = base64.b64encode(secrets.token_bytes(96)).decode()
    key = "\n".join(["-----BEGIN OPENSSH PRIVATE KEY-----",
                     *(body[i:i + 64] for i in range(0, len(body), 64)),
                     "-----END OPENSSH PRIVATE KEY-----"])
    return {
        **{v: f"lab-{secrets.token_hex(10)}" for v in LAB_PASSWORD_VARIABLES},
        "PLANT_JOIN_PASSWORD": f"join-{secrets.token_hex(10)}",
        "PLANT_API_TOKEN": str(uuid.uuid4()),
        "PLANT_TICKET": base64.b64encode(secrets.token_bytes(48)).decode(),
        "PLANT_KEY": key,
        # a password with a space, shell-quoted: each half is a secret of its own
        "PLANT_SPACED_1": f"spaced-{secrets.token_hex(8)}",
        "PLANT_SPACED_2": f"half-{secrets.token_hex(8)}",
        "PLANT_OWN_ERROR": f"own-{secrets.token_hex(10)}",
    }


def test_planted_secrets_reach_no_report(tmp_path):
    plants = planted()
    control = {"PLANT_CONTROL": f"control-{secrets.token_hex(10)}"}
    env = {**os.environ, "PYTHONPATH": str(REPO), **plants, **control,
           "PLANT_TICKET_TIME": f"{secrets.randbits(32):08X}"}
    (tmp_path / "test_planted.py").write_text(SCENARIO)
    alluredir, metrics = tmp_path / "allure", tmp_path / "metrics.json"
    junit = tmp_path / "junit.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_planted.py", "-p", "lab.pytest_plugin",
         "-p", "no:cacheprovider", "-rA", "--log-level=DEBUG", "--timescale", "0.1",
         "--lab-name", NAME, "--lab-subnet", SUBNET, "--alluredir", str(alluredir),
         "--metrics-file", str(metrics), "--junitxml", str(junit)],
        cwd=tmp_path, text=True, capture_output=True, timeout=240, env=env,
        stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-4000:]
    assert "1 failed, 1 passed" in done.stdout, output[-4000:]
    assert "exited with 3" in done.stdout, output[-4000:]  # the failure is the planted one
    assert leftovers(EmbeddedConfig(name=NAME, subnet=SUBNET)) == []
    everything = {**plants, **control}
    findings = scan_paths([alluredir, metrics, junit], everything)
    findings += scan_text(done.stdout, everything, "stdout")
    findings += scan_text(done.stderr, everything, "stderr")
    # the negative control is found (the check can fail), and nothing else is
    assert [f.secret for f in findings] == ["PLANT_CONTROL"], \
        "secrets leaked:\n  " + "\n  ".join(map(str, findings))
    assert findings[0].where.startswith(str(alluredir))
    # and the run did carry the secrets where they were planted, redacted (else the scan
    # above proved nothing): the node log the evidence read, the failure everywhere
    attached = [p.read_text(errors="replace") for p in alluredir.glob("*-attachment*")]
    ticket = f"PVE:root@pam:{env['PLANT_TICKET_TIME']}::[REDACTED]"
    assert any("pve-cluster: " in text and ticket in text and
               "PRIVATE KEY----- [REDACTED] -----END" in text for text in attached), \
        "no node log attachment carries the planted ticket and key, redacted"
    assert any("PVEAPIToken=root@pam!ci=[REDACTED]" in text for text in attached), \
        "no attachment (the captured DEBUG log) carries the command line with the token"
    results = "\n".join(p.read_text() for p in alluredir.glob("*-result.json"))
    assert "--password '[REDACTED]'" in results  # the scenario's own step title
    assert "secret=[REDACTED]" in results  # the scenario's own error, Allure's message
    for where, text in (("stdout", done.stdout), ("JUnit XML", junit.read_text())):
        assert "--password [REDACTED]" in text and "secret=[REDACTED]" in text, \
            f"{where} does not show the planted failure (the chained traceback), redacted"
    assert "RuntimeError: join failed: secret=[REDACTED]" in metrics.read_text(), \
        "metrics.json does not show the failure, redacted"
