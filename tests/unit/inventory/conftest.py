"""Inventory tests never reach a real node or BMC: drivers and readers are fakes."""

from __future__ import annotations

import socket
import subprocess

import pytest


@pytest.fixture(autouse=True)
def no_network_no_processes(monkeypatch):
    """Anything that tries to open a socket or start a process fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to reach the outside: {args!r}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
