"""Twins the libvirt lab tests share."""

from __future__ import annotations


class RecordingAccess:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def wait_ssh(self, lab, timeout_s):
        self.calls.append("wait_ssh")

    def step_clocks(self, lab):
        self.calls.append("step_clocks")

    def configure_networking(self, lab):
        self.calls.append("configure_networking")


class KeptOpen:
    """The test driver forgets its state when its last connection closes: the two labs
    of one test share a connection that outlives their close()."""

    def __init__(self, host):
        self.host = host

    def __getattr__(self, name):
        return getattr(self.host, name)

    def close(self):
        pass
