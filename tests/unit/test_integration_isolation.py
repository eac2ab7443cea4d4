"""The integration modules can run side by side (`pytest tests/ -n 2`, loadfile): no two
files, and no CI job script, start labs on the same subnet, so two labs up at once never
share a bridge address. A module's own tests may share one (they run one after another on
one worker)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBNET = re.compile(r"198\.18\.(\d+)")
LAB_RANGE = "198.18.0.0/15"  # the default --lab-range: named in messages, not a lab subnet


def sources() -> list[Path]:
    return sorted((ROOT / "tests" / "integration").glob("*.py")) + \
        sorted(p for p in (ROOT / ".ci").iterdir() if p.is_file())


def test_every_subnet_belongs_to_one_integration_module_or_ci_job():
    users: dict[str, set[str]] = defaultdict(set)
    for path in sources():
        text = path.read_text().replace(LAB_RANGE, "")
        for octet in SUBNET.findall(text):
            users[octet].add(str(path.relative_to(ROOT)))
    shared = {f"198.18.{octet}": sorted(files) for octet, files in users.items()
              if len(files) > 1}
    assert shared == {}, f"subnets used by more than one module or job: {shared}"
    assert len(users) > 20  # the scan found the labs (a broken pattern finds none)
