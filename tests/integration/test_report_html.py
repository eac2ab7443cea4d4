"""The HTML report opens and renders in a real browser with no network: a scenario-shaped
run writes Allure results with a timeline picture, the report is generated exactly as
the main command does it (.ci/scenarios), and headless Chromium loads it from file://
with every non-local request refused, finds the scenario and shows its timeline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALLURE = REPO / ".ci/allure/node_modules/.bin/allure"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

SCENARIO = '''
import allure

from harness.clock import Clock
from harness.report import timeline_plot
from harness.events import NodeFault, ProbeDown, ProbeUp
from harness.timeline import EventKind as K, Timeline

pytestmark = [allure.epic("HA story"), allure.feature("HA recovery")]


@allure.story("Power cut of the guest's node")
def test_power_cut_guest_node_recovers_elsewhere():
    tl = Timeline(Clock())
    tl.record(K.PROBE_UP, "ct:100", ProbeUp("ct:100", "node1", "a", "ct:100", 1), t=1.0)
    tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node1"), t=10.0)
    tl.record(K.PROBE_DOWN, "ct:100", ProbeDown("ct:100", "refused", False, "node1", "a"),
              t=10.1)
    tl.record(K.PROBE_UP, "ct:100", ProbeUp("ct:100", "node2", "b", "ct:100", 9, "node1", "a"),
              t=25.0)
    png = timeline_plot.render(tl, nodes=["node1", "node2", "node3"], overlays=[
        timeline_plot.RecoveryOverlay(10.0, 25.0, window=(12.5, 22.0), budget_s=24.0,
                                      label="time_to_recovery")], title="HA story")
    allure.attach(png, name="timeline", attachment_type=allure.attachment_type.PNG)
'''


def generate(workdir: Path) -> Path:
    """Results from a scenario-shaped run, then the report as .ci/scenarios makes it."""
    (workdir / "test_scenario.py").write_text(SCENARIO)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--noconftest", "--rootdir", str(workdir), "--alluredir",
                          "results", "test_scenario.py"], cwd=workdir, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(REPO),
                                                      "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout[-2000:]
    gen = subprocess.run([sys.executable, "-m", "lab.cli", "report", "results", "-o",
                          "reports/html"], cwd=workdir, env={"PYTHONPATH": str(REPO),
                                                             "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=240)
    assert gen.returncode == 0, gen.stdout[-2000:] + gen.stderr[-2000:]
    return workdir / "reports/html/index.html"


@pytest.mark.skipif(not ALLURE.exists() or CHROMIUM is None,
                    reason="needs Allure's generator and Chromium: run bash .ci/setup")
def test_the_report_renders_offline_with_the_scenario_and_its_timeline(tmp_path):
    from playwright.sync_api import sync_playwright

    index = generate(tmp_path)
    assert "googletagmanager" not in index.read_text()
    refused: list[str] = []

    def local_only(route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route("**/*", local_only)
            page.goto(index.as_uri())
            for label in ("HA story", "HA recovery", "Power cut of the guest's node",
                          "test_power_cut_guest_node_recovers_elsewhere"):
                page.get_by_text(label, exact=True).first.click(timeout=15_000)
            assert page.get_by_text("Passed", exact=True).first.is_visible()
            page.get_by_text("timeline", exact=True).first.click(timeout=15_000)
            page.wait_for_function(
                "() => [...document.images].some(i => i.complete && i.naturalWidth >= 1600)",
                timeout=15_000)
        finally:
            browser.close()
    assert refused == []
    assert (tmp_path / "reports/history.jsonl").read_text().strip()  # history kept
