"""The embedded lab refuses to start on a host that cannot run it, naming the fix."""

from __future__ import annotations

import pytest

from harness.errors import LabError
from lab.embedded import preflight


def test_without_root_the_message_names_the_fix(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError) as caught:
        preflight.check_host()
    message = str(caught.value)
    assert "needs root" in message and "fix:" in message and "sudo" in message


def test_a_missing_tool_names_its_debian_package(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    real_which = preflight.shutil.which
    monkeypatch.setattr(preflight.shutil, "which",
                        lambda tool, path=None: None if tool.startswith("corosync")
                        else real_which(tool, path=path))
    with pytest.raises(LabError) as caught:
        preflight.check_host()
    message = str(caught.value)
    assert "corosync" in message and "apt-get install corosync" in message
    assert "openssh" not in message.split("fix:")[0]  # only what is missing is named


def test_a_missing_python_package_names_it(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(preflight.shutil, "which", lambda tool, path=None: f"/usr/bin/{tool}")
    monkeypatch.setattr(preflight.importlib.util, "find_spec",
                        lambda name: None if name == "mfusepy" else object())
    with pytest.raises(LabError, match="pip install mfusepy"):
        preflight.check_host()


def test_a_host_without_nft_names_the_nftables_package(monkeypatch):
    """The network faults run nft and tc inside the nodes, which use the host's tools."""
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    real_which = preflight.shutil.which
    monkeypatch.setattr(preflight.shutil, "which",
                        lambda tool, path=None: None if tool == "nft"
                        else real_which(tool, path=path))
    with pytest.raises(LabError) as caught:
        preflight.check_host()
    assert "apt-get install nftables" in str(caught.value)
    assert preflight.TOOLS["tc"] == "iproute2"
