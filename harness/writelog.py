"""A guest's write log: the record it appends to its disk every 100 ms while it runs.

`<seq> <node> <boot-id> <monotonic-ns>`, one line each, fsynced. The sequence goes on
from the last complete record on disk at each start, so the log shows what happened to
the guest: two copies running at once (records of two boots interleaved, sequence numbers
written twice), writes lost (a boot that went on from a lower sequence than an earlier
boot reached, or a gap). The guest runtime of a lab writes it; the harness reads it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Record:
    seq: int
    node: str
    boot_id: str
    mono_ns: int


def format_record(record: Record) -> str:
    return f"{record.seq} {record.node} {record.boot_id} {record.mono_ns}\n"


def parse_line(line: str) -> Record | None:
    fields = line.split()
    if len(fields) != 4 or not fields[0].isdigit() or not fields[3].isdigit():
        return None
    return Record(int(fields[0]), fields[1], fields[2], int(fields[3]))


def parse_log(text: str) -> tuple[list[Record], int]:
    """Records in file order, and the number of torn (unparsable) lines."""
    lines = text.split("\n")
    tail = lines.pop()  # after the last newline: nothing, or a record torn by a power cut
    records, torn = [], 1 if tail.strip() else 0
    for line in lines:
        record = parse_line(line)
        if record is None:
            torn += 1 if line.strip() else 0
        else:
            records.append(record)
    return records, torn


@dataclass
class Boot:
    """One run of a guest (one boot id) as the write log shows it."""

    boot_id: str
    node: str
    first_seq: int
    last_seq: int
    count: int
    first_ns: int
    last_ns: int


@dataclass
class LogReport:
    records: int = 0
    torn: int = 0
    boots: list[Boot] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)  # seqs written more than once
    gaps: list[tuple[int, int]] = field(default_factory=list)  # missing seq ranges
    overlaps: list[tuple[str, str]] = field(default_factory=list)  # concurrent boots
    read_on: str = ""  # the node whose mount of the storage gave this read ("": not said)

    @property
    def forked(self) -> bool:
        """Two copies wrote at the same time (split brain)."""
        return bool(self.duplicates or self.overlaps)

    @property
    def ok(self) -> bool:
        return not self.forked and not self.gaps


def analyse(records: list[Record], torn: int = 0) -> LogReport:
    report = LogReport(records=len(records), torn=torn)
    boots: dict[str, Boot] = {}
    for r in records:
        boot = boots.get(r.boot_id)
        if boot is None:
            boots[r.boot_id] = Boot(r.boot_id, r.node, r.seq, r.seq, 1, r.mono_ns, r.mono_ns)
        else:
            boot.first_seq, boot.last_seq = min(boot.first_seq, r.seq), max(boot.last_seq,
                                                                            r.seq)
            boot.first_ns, boot.last_ns = min(boot.first_ns, r.mono_ns), max(boot.last_ns,
                                                                            r.mono_ns)
            boot.count += 1
    report.boots = sorted(boots.values(), key=lambda b: (b.first_ns, b.first_seq))
    counts = Counter(r.seq for r in records)
    report.duplicates = sorted(s for s, n in counts.items() if n > 1)
    seqs = sorted(counts)
    for a, b in zip(seqs, seqs[1:], strict=False):
        if b > a + 1:
            report.gaps.append((a + 1, b - 1))
    for i, a in enumerate(report.boots):
        for b in report.boots[i + 1:]:
            if a.first_ns <= b.last_ns and b.first_ns <= a.last_ns:
                report.overlaps.append((a.boot_id, b.boot_id))
    return report
