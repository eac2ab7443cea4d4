"""The planted-secret scanner finds a secret in every form a report could carry it, and
nothing else."""

from __future__ import annotations

import json

import pytest

from harness.report.redact import redact
from tests.secret_scan import Finding, scan_paths, scan_text

KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq9vS0dA1Jx3yXw+8hH2kL5Q7\n"
       "pQ2Lw8v+R1mYc3FzN0tJ6uE4oW9bI/aX7sD1fG==\n-----END RSA PRIVATE KEY-----")
SECRETS = {"password": "pw-4f1c2a9e77d0", "key": KEY}


def test_a_secret_as_written_is_found_with_where():
    [found] = scan_text("pvecm add 198.18.0.1 --password pw-4f1c2a9e77d0\n", SECRETS,
                        "stdout")
    assert found == Finding("password", "stdout", 32)
    assert "pw-4f1c" not in str(found)  # a finding names the secret, never shows it


def test_one_line_of_a_key_is_a_leak():
    text = "journal: pQ2Lw8v+R1mYc3FzN0tJ6uE4oW9bI/aX7sD1fG==\n"
    assert [f.secret for f in scan_text(text, SECRETS, "log")] == ["key"]


def test_a_key_inside_json_is_found():
    text = json.dumps({"attachment": KEY})  # result JSON: its newlines written as \n
    assert [f.secret for f in scan_text(text, SECRETS, "result.json")] == ["key"]


def test_html_escaped_secret_is_found():
    secrets = {"token": "a<b>&c\"d'e-0123456789"}
    text = "<td>a&lt;b&gt;&amp;c&quot;d&#x27;e-0123456789</td>"
    assert [f.secret for f in scan_text(text, secrets, "events")] == ["token"]


def test_redacted_text_has_no_finding():
    text = f"pvecm add 198.18.0.1 --password pw-4f1c2a9e77d0\n{KEY}\n"
    assert scan_text(redact(text), SECRETS, "log") == []


def test_an_empty_secret_is_refused():
    with pytest.raises(ValueError, match="'x' is empty"):
        scan_text("anything", {"x": ""}, "stdout")


def test_files_under_directories_are_scanned_and_missing_paths_skipped(tmp_path):
    results = tmp_path / "allure"
    (results / "deep").mkdir(parents=True)
    (results / "ok-result.json").write_text('{"name": "fine"}')
    (results / "deep" / "x-attachment.txt").write_bytes(b"\x89PNG pw-4f1c2a9e77d0")
    found = scan_paths([results, tmp_path / "junit.xml"], SECRETS)
    assert found == [Finding("password", str(results / "deep" / "x-attachment.txt"), 5)]
