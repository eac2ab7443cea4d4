"""The baseline round trip on the embedded lab: a short story (baseline_story/) run with
--repeat 2 on PVE 8 and saved as a baseline, then run with --repeat 2 on PVE 9 and
verified against it. Each repetition is a fresh lab; metrics.json carries each figure's
repeat, each step's outcome and each repetition's setting and package versions; the
power cut of a non-master node recovers the same way on both (pve-model.md §10.1), so
the verdict has no regression, and `pvechaos verify` on the files agrees. A guest that
fails to start (a change made on purpose) is then a behaviour REGRESSION."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import leftovers

REPO = Path(__file__).resolve().parents[1].parent
STORY = Path(__file__).parent / "baseline_story" / "story_power_cut.py"
NAME, SUBNET = "base", "198.18.161.0/24"


def story(tmp_path: Path, flavour: str, *extra: str, repeat: int = 2,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(STORY), "-p", "no:cacheprovider", "--repeat",
         str(repeat), "--pve-flavour", flavour, "--timescale", "0.1", "--recovery-budget",
         "240", "--lab-name", NAME, "--lab-subnet", SUBNET, *extra],
        cwd=REPO, text=True, capture_output=True, timeout=200, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_baseline_on_pve8_verified_on_pve9(tmp_path):
    baseline = tmp_path / "BASELINE.json"
    before = story(tmp_path, "8", "--metrics-file", str(tmp_path / "before" / "metrics.json"),
                   "--baseline-save", str(baseline))
    assert before.returncode == 0, before.stdout[-3000:] + before.stderr[-2000:]
    stored = json.loads(baseline.read_text())
    figures = {f["name"]: f for f in stored["figures"]}
    assert len(figures["time_to_recovery"]["values"]) == 2
    assert [s["outcomes"] for s in stored["steps"]] == [["passed", "passed"]] * 2
    assert stored["settings"] == {"story_power_cut": {"lab": "embedded", "nodes": 3,
                                                      "timescale": 0.1}}
    assert {v["pve-manager"] for v in stored["versions"].values()} == {"8.4.1"}
    assert len(stored["versions"]) == 3 and stored["constants"]["story_power_cut"]["token_ms"]
    run = json.loads((tmp_path / "before" / "metrics.json").read_text())
    assert sorted({m["data"]["repeat"] for m in run["metrics"]}) == [1, 2]
    assert [s["repeat"] for s in run["settings"]] == [1, 2]

    after_file = tmp_path / "after" / "metrics.json"
    after = story(tmp_path, "9", "--metrics-file", str(after_file),
                  "--verify-against", str(baseline))
    assert after.returncode == 0, after.stdout[-4000:] + after.stderr[-2000:]
    assert "before: PVE 8.4.1 (node1, node2, node3)" in after.stdout
    assert "after:  PVE 9.1.1 (node1, node2, node3)" in after.stdout
    verdict = json.loads(after_file.with_name("verdict.json").read_text())
    assert verdict["regression"] is False
    assert {b["verdict"] for b in verdict["behaviours"]} == {"same"}
    recovery = next(f for f in verdict["figures"] if f["name"] == "time_to_recovery")
    assert recovery["verdict"] in ("same", "faster") and recovery["p"] is not None
    assert after_file.with_name("before-after.png").read_bytes().startswith(b"\x89PNG")

    cli = subprocess.run([sys.executable, "-m", "lab.cli", "verify", "--against",
                          str(baseline), str(after_file)], cwd=REPO, text=True,
                         capture_output=True, timeout=60, env={**os.environ,
                                                               "PYTHONPATH": str(REPO)})
    assert cli.returncode == 0 and "time_to_recovery" in cli.stdout, cli.stdout + cli.stderr

    # a change made on purpose: a guest that fails to start is a behaviour REGRESSION
    broken_file = tmp_path / "broken" / "metrics.json"
    broken = story(tmp_path, "9", "--metrics-file", str(broken_file), "--verify-against",
                   str(baseline), repeat=1, env={"PVECHAOS_GUEST_FAILS": "1"})
    assert broken.returncode != 0, broken.stdout[-3000:]
    verdict = json.loads(broken_file.with_name("verdict.json").read_text())
    assert verdict["regression"] is True
    first = next(b for b in verdict["behaviours"]
                 if b["step"].endswith("test_guest_under_ha_away_from_the_master"))
    assert first["verdict"] == "REGRESSION", first
    assert leftovers(EmbeddedConfig(name=NAME, subnet=SUBNET)) == []
