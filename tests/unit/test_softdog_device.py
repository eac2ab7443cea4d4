"""The node's /dev/watchdog (lab/embedded/softdog_device.py) is served on its own thread:
pings are taken when they are sent, whatever the init is busy with, and the published
deadline follows them."""

from __future__ import annotations

import socket
import threading
import time

from harness.waits import NotYet, wait_until
from lab.embedded.softdog_device import SoftdogDevice
from pvemu import softdog
from pvemu.softdog import DeviceClient, DeviceError


def device(tmp_path, margin_s: float = 0.5):
    path = str(tmp_path / "watchdog")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    lines: list[str] = []
    dev = SoftdogDevice(margin_s, listener, lines.append,
                        deadline_file=str(tmp_path / "deadline"))
    dev.start()
    return dev, path, lines


def test_pings_sent_while_the_init_is_busy_keep_the_timer_from_expiring(tmp_path):
    dev, path, _ = device(tmp_path, margin_s=0.5)
    client = DeviceClient(path)
    # the init is "blocked" (a unit stopping) for three times the timeout; the mux pings
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        client.keepalive()
        time.sleep(0.05)
    assert dev.fire_if_expired(time.monotonic(), noboot=False) is None
    published = (tmp_path / "deadline").read_text()
    assert not softdog.overdue(published, time.monotonic())
    client.close(magic=True)


def test_a_silent_opener_lets_it_expire_and_fire(tmp_path):
    dev, path, lines = device(tmp_path, margin_s=0.2)
    client = DeviceClient(path)
    wait_until("the timer to expire", lambda: dev.fire_if_expired(time.monotonic(), False)
               or NotYet("not yet"), timeout_s=5, interval_s=0.02)
    assert lines == ["softdog: Initiating system reboot"]
    assert (tmp_path / "deadline").read_text() == ""  # fired: the timer is stopped
    client.close(magic=False)


def test_one_opener_at_a_time_and_a_reset_frees_the_device(tmp_path):
    dev, path, _ = device(tmp_path)
    first = DeviceClient(path)
    try:
        DeviceClient(path)
        raise AssertionError("a second open succeeded")
    except DeviceError as exc:
        assert exc.errno == 16
    dev.reset()
    assert dev.remaining(time.monotonic()) is None
    wait_until("the device free again", lambda: _opens(path), timeout_s=5)
    first.close(magic=False)  # its connection went with the reset


def _opens(path: str) -> bool | NotYet:
    try:
        DeviceClient(path).close(magic=True)
        return True
    except DeviceError as exc:
        return NotYet(str(exc))


def test_pings_made_in_time_but_not_read_yet_keep_a_starved_init_from_firing(tmp_path):
    """The whole init starved of CPU: its device thread has not read the mux's pings
    when the loop wakes past the deadline. They were made in time (their stamps), so the
    timer is not expired; a ping made after the deadline does not save it."""
    path = str(tmp_path / "watchdog")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    lines: list[str] = []
    dev = SoftdogDevice(0.3, listener, lines.append, deadline_file=str(tmp_path / "dl"))
    opener = threading.Thread(target=dev._open)  # the device thread opens it, then starves
    opener.start()
    client = DeviceClient(path)
    opener.join(5)
    end = time.monotonic() + 0.9  # three timeouts, pinged every 0.05 s, nothing read
    while time.monotonic() < end:
        client.keepalive()
        time.sleep(0.05)
    assert dev.fire_if_expired(time.monotonic(), noboot=False) is None
    assert lines == []
    time.sleep(0.5)  # the mux silent past the deadline, then a late ping
    client.keepalive()
    assert dev.fire_if_expired(time.monotonic(), noboot=False) is True
    assert lines == ["softdog: Initiating system reboot"]
    client.close(magic=False)
    listener.close()
