"""The emulated softdog (pvemu/softdog.py): Linux watchdog_dev.c and softdog.c semantics
on the monotonic clock (pve-faults.md §3.4, §3.7)."""

from __future__ import annotations

from pvemu import softdog
from pvemu.softdog import Softdog, handle_line


def opened(now: float = 0.0, timeout: float = 10.0) -> Softdog:
    dog = Softdog(60.0)
    assert dog.open(now)
    handle_line(dog, f"timeout {timeout}", now)
    return dog


def test_open_starts_the_timer_with_soft_margin_until_mux_sets_its_timeout():
    dog = Softdog(60.0)
    assert not dog.running
    dog.open(0.0)
    assert dog.remaining(0.0) == 60.0
    handle_line(dog, "timeout 10", 5.0)
    assert dog.remaining(5.0) == 10.0


def test_a_second_opener_is_refused_as_ebusy():
    dog = opened()
    assert not dog.open(1.0)


def test_keepalives_feed_it_and_it_expires_one_timeout_after_the_last():
    dog = opened()
    for t in (1.0, 2.0, 3.0):
        handle_line(dog, "keepalive", t)
    assert not dog.expired(12.9)
    assert dog.expired(13.0)


def test_a_ping_after_the_deadline_is_too_late_the_timer_has_fired():
    # a node frozen past its timeout: on thaw the mux's first ping may reach the init
    # before it checks the timer, but the kernel's hrtimer fired at the deadline
    dog = opened()
    handle_line(dog, "keepalive", 1.0)
    handle_line(dog, "keepalive", 30.0)  # thawed 19 s after the deadline (11.0)
    assert dog.expired(30.0)


def test_a_request_counts_when_it_was_made_as_its_stamp_says_not_when_it_was_read():
    dog = opened()  # deadline 10.0
    handle_line(dog, "@9.5 keepalive", 12.0)  # made in time, read 2 s late: it counts
    assert not dog.expired(19.4) and dog.expired(19.5)
    handle_line(dog, "@25.0 keepalive", 26.0)  # made after the deadline: too late
    assert dog.expired(26.0)
    dog = opened()
    handle_line(dog, "@50.0 keepalive", 5.0)  # a stamp ahead of the reader: taken as now
    assert dog.remaining(5.0) == 10.0
    handle_line(dog, "@1.0 write V", 6.0)
    assert dog.release(6.0) is None  # the stamped write still carries the magic V


def test_the_magic_close_stops_the_timer():
    dog = opened()
    handle_line(dog, "write V", 4.0)
    assert dog.release(4.0) is None
    assert not dog.running and not dog.expired(1000.0)


def test_a_close_without_v_leaves_it_running_after_one_last_ping():
    dog = opened()
    handle_line(dog, "keepalive", 2.0)
    assert dog.release(5.0) == "watchdog0: watchdog did not stop!"
    assert dog.running and not dog.expired(14.9) and dog.expired(15.0)


def test_a_write_after_v_takes_the_permission_back():
    dog = opened()
    handle_line(dog, "write V", 1.0)
    handle_line(dog, "keepalive", 1.5)  # an ioctl keeps the permission
    handle_line(dog, "write x", 2.0)
    assert dog.release(2.0) is not None


def test_a_reopened_device_is_fed_again_after_an_unclean_close():
    dog = opened()
    dog.release(1.0)
    assert dog.open(2.0)
    handle_line(dog, "keepalive", 9.0)
    assert not dog.expired(18.0)


def test_fire_with_noboot_stops_the_timer_until_the_next_ping():
    dog = opened()
    assert dog.fire(noboot=True) == "softdog: Triggered - Reboot ignored"
    assert not dog.running
    handle_line(dog, "keepalive", 20.0)
    assert dog.remaining(20.0) == 10.0
    assert dog.fire(noboot=False) == "softdog: Initiating system reboot"


def test_the_published_deadline_reads_back_overdue_only_once_passed():
    dog = Softdog(10.0)
    assert softdog.deadline_text(dog) == ""  # stopped: never overdue
    assert not softdog.overdue(softdog.deadline_text(dog), 1e9)
    dog.open(100.0)
    text = softdog.deadline_text(dog)
    assert not softdog.overdue(text, 109.9)
    assert softdog.overdue(text, 110.0)
    dog.keepalive(105.0)
    assert not softdog.overdue(softdog.deadline_text(dog), 110.0)
    assert not softdog.overdue("garbage", 1e9)  # a torn read is not a reset
