"""A failing test's report carries no secret: its traceback (source lines, each frame's
arguments, the error lines), its captured output and log, and its assertion message are
redacted before the terminal, JUnit and Allure see them (harness.plugin, with the real
allure-pytest). The lab-free half of tests/integration/test_planted_secrets.py."""

from __future__ import annotations

import pytest

from tests.secret_scan import scan_paths, scan_text

pytest_plugins = ["pytester"]

SECRETS = {"password": "hunter2-6a1f0c", "token": "0b1c9c6e-5f11-4d1a-9a4d-2f7c1e3a9b10"}

FAILING = """
import logging

from harness.errors import CommandError

PASSWORD = "hunter2-6a1f0c"
TOKEN = "PVEAPIToken=root@pam!ci=0b1c9c6e-5f11-4d1a-9a4d-2f7c1e3a9b10"


def join(command, token):
    print(f"running {command} with {token}")
    logging.getLogger("scenario").warning("curl -H 'Authorization: %s'", token)
    raise CommandError("node2", command, 255, "", f"refused: {token}")


def test_harness_error():
    join(f"pvecm add 198.18.0.11 --password {PASSWORD}", TOKEN)


def test_assertion():
    said = f"password={PASSWORD}"
    assert said == "", f"the node said {TOKEN}"
"""


def test_no_secret_reaches_terminal_junit_or_allure(pytester: pytest.Pytester, tmp_path):
    pytester.makepyfile(test_planted=FAILING)
    alluredir, junit = tmp_path / "allure", tmp_path / "junit.xml"
    result = pytester.runpytest("-p", "harness.plugin", f"--metrics-file={tmp_path / 'm'}",
                                f"--alluredir={alluredir}", f"--junitxml={junit}", "-rA",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    output = result.stdout.str() + result.stderr.str()
    assert "--password [REDACTED]" in output and "password=[REDACTED]" in output
    assert "ci=[REDACTED]" in output  # the frame's argument, the print, the log line
    found = scan_paths([alluredir, junit], SECRETS) + scan_text(output, SECRETS, "output")
    assert found == [], "\n".join(map(str, found))


OWN = """
import allure

S = {"attach": "att-51c0e2", "data": "dat-9d27aa", "file": "fil-0e6b13", "step": "stp-77f1c4",
     "param": "par-3b8e90", "error": "err-c4a5d1", "spaced": "spa-1f2e3d sp2-4c5b6a",
     "bare": "bare-8e3f0a"}
PNG = bytes(range(256)) + b"password=not-text-so-kept"


def test_own_allure_calls(tmp_path):
    allure.attach(f"password={S['attach']}", name="text")
    allure.attach(f"token: {S['data']}".encode(), name="bytes")
    path = tmp_path / "log.txt"
    path.write_text(f"pvecm add 198.18.0.11 --password '{S['spaced']}'\\n--secret {S['file']}\\n")
    allure.attach.file(str(path), name="file", attachment_type=allure.attachment_type.TEXT)
    allure.attach(PNG, name="picture", attachment_type=allure.attachment_type.PNG)
    allure.attach(S["bare"], name="no key, no rule: the scan's negative control")
    allure.dynamic.parameter("login", f"password={S['param']}")
    with allure.step(f"join with --password {S['step']}"):
        raise RuntimeError(f"the node refused secret={S['error']}")
"""


def test_a_scenarios_own_allure_calls_are_redacted_on_disk(pytester: pytest.Pytester,
                                                           tmp_path):
    """What a scenario attaches, names and raises itself goes through allure-pytest's
    writer, which the harness has redact (harness/report/allure_redact.py): the text
    and bytes attachments, an attached file, a step's title, a parameter, a plain
    exception's message (Allure's status message and trace). A binary attachment is kept
    byte for byte, and a secret no rule can recognise (bare, with no key) is found: the
    scan could fail."""
    pytester.makepyfile(test_own=OWN)
    alluredir = tmp_path / "allure"
    result = pytester.runpytest("-p", "harness.plugin", f"--metrics-file={tmp_path / 'm'}",
                                f"--alluredir={alluredir}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    secrets = {"attach": "att-51c0e2", "data": "dat-9d27aa", "file": "fil-0e6b13",
               "step": "stp-77f1c4", "param": "par-3b8e90", "error": "err-c4a5d1",
               "spaced-1": "spa-1f2e3d", "spaced-2": "sp2-4c5b6a", "bare": "bare-8e3f0a"}
    found = scan_paths([alluredir], secrets)
    assert [f.secret for f in found] == ["bare"], "\n".join(map(str, found))
    texts = [p.read_bytes() for p in alluredir.glob("*-attachment*")]
    png = bytes(range(256)) + b"password=not-text-so-kept"
    assert png in texts  # binary: as attached
    joined = b"\n".join(texts)
    for kept in (b"password=[REDACTED]", b"token: [REDACTED]", b"--secret [REDACTED]",
                 b"--password '[REDACTED]'"):
        assert kept in joined, kept
    results = "\n".join(p.read_text() for p in alluredir.glob("*-result.json"))
    assert "join with --password [REDACTED]" in results
    assert "secret=[REDACTED]" in results  # the exception, in statusDetails
