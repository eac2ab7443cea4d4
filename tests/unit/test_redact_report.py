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
