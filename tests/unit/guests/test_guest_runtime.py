"""Process records of a node's running guests (pvemu.guest_runtime), no root."""

from __future__ import annotations

import os

from pvemu.guest_runtime import process_start


def test_a_stale_runtime_entry_reads_as_stopped(guests, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "100.json").write_text('{"sid": "ct:100", "pid": 999999999, "start": 1, '
                                  '"address": "198.18.50.100/24", "port": 8080, '
                                  '"started_at": 0}')
    assert guests.running("ct:100") is False
    assert not (run / "100.json").exists()
    mine = process_start(os.getpid())
    (run / "100.json").write_text(f'{{"sid": "ct:100", "pid": {os.getpid()}, '
                                  f'"start": {mine}, "address": "a", "port": 1, '
                                  '"started_at": 0}')
    assert guests.running("ct:100") is True and guests.running("vm:100") is False
