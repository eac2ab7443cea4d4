"""The guest's write log: parsing, the tail at start, forks and gaps."""

from __future__ import annotations

from pvemu.guest_process import Record, analyse, format_record, last_seq, parse_log


def log(*records: tuple[int, str, str, int]) -> str:
    return "".join(format_record(Record(*r)) for r in records)


def test_records_round_trip_and_a_torn_last_line_is_counted_not_parsed():
    text = log((1, "node1", "aa", 10), (2, "node1", "aa", 20)) + "3 node1 a"
    records, torn = parse_log(text)
    assert [r.seq for r in records] == [1, 2] and torn == 1
    assert records[0] == Record(1, "node1", "aa", 10)


def test_the_sequence_continues_from_the_last_complete_record(tmp_path):
    disk = tmp_path / "vm-100-disk-0.raw"
    assert last_seq(disk) == 0
    disk.write_text(log(*[(i, "node1", "aa", i) for i in range(1, 2001)]) + "2001 no")
    assert last_seq(disk) == 2000
    disk.write_text("")
    assert last_seq(disk) == 0


def test_a_failover_that_continues_the_sequence_is_clean():
    records, torn = parse_log(log((1, "node1", "aa", 10), (2, "node1", "aa", 20),
                                  (3, "node2", "bb", 90), (4, "node2", "bb", 100)))
    report = analyse(records, torn)
    assert report.ok and not report.forked
    assert [(b.boot_id, b.node, b.first_seq, b.last_seq) for b in report.boots] == [
        ("aa", "node1", 1, 2), ("bb", "node2", 3, 4)]


def test_two_copies_writing_at_once_show_as_a_fork():
    # bb started while aa still ran: both read seq 2 as the last one
    records, _ = parse_log(log((1, "node1", "aa", 10), (2, "node1", "aa", 20),
                               (3, "node1", "aa", 30), (3, "node2", "bb", 31),
                               (4, "node1", "aa", 40), (4, "node2", "bb", 41)))
    report = analyse(records)
    assert report.forked and not report.ok
    assert report.duplicates == [3, 4]
    assert report.overlaps == [("aa", "bb")]


def test_lost_writes_show_as_a_gap():
    records, _ = parse_log(log((1, "node1", "aa", 10), (2, "node1", "aa", 20),
                               (6, "node2", "bb", 90)))
    report = analyse(records)
    assert report.gaps == [(3, 5)] and not report.forked and not report.ok
