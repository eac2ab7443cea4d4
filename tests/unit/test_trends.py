"""Recovery figures across runs: the history file and its picture."""

from __future__ import annotations

import json

from harness.metrics import Metric
from harness.report import trends


def figure(value: float, budget: float = 24.0) -> Metric:
    return Metric("test_ha_story", "time_to_recovery", value, {}, (12.5, 22.0), budget)


def test_runs_are_appended_replaced_by_id_and_capped(tmp_path):
    path = tmp_path / "metrics-history.jsonl"
    for i in range(5):
        trends.append_run(path, f"run{i}", "abc123", [figure(15.0 + i)], keep=3)
    trends.append_run(path, "run4", "abc124", [figure(30.0)], keep=3)  # same run again
    runs = trends.read_runs(path)
    assert [r.run for r in runs] == ["run2", "run3", "run4"]
    assert runs[-1].metrics == (figure(30.0),) and runs[-1].revision == "abc124"


def test_only_runs_of_the_latest_setting_make_the_trend(tmp_path):
    path = tmp_path / "h.jsonl"
    trends.append_run(path, "old", "r", [figure(15.0)])  # written before settings were kept
    trends.append_run(path, "a", "r", [figure(150.0)], setting="libvirt lab, timescale 1")
    trends.append_run(path, "b", "r", [figure(15.0)], setting="embedded lab, timescale 0.1")
    trends.append_run(path, "c", "r", [figure(16.0)], setting="embedded lab, timescale 0.1")
    runs = trends.read_runs(path)
    assert [r.setting for r in runs][:2] == ["", "libvirt lab, timescale 1"]
    assert [r.run for r in trends.comparable(runs)] == ["b", "c"]
    assert trends.comparable([]) == []


def test_a_damaged_line_is_skipped(tmp_path):
    path = tmp_path / "h.jsonl"
    trends.append_run(path, "a", "r", [figure(15.0)])
    path.write_text(path.read_text() + "{not json\n")
    assert [r.run for r in trends.read_runs(path)] == ["a"]


def test_the_series_follow_each_recovery_figure_run_after_run(tmp_path):
    path = tmp_path / "h.jsonl"
    trends.append_run(path, "a", "r", [figure(15.0), Metric("s", "time_to_heal", 3.0)])
    trends.append_run(path, "b", "r", [figure(31.0)])
    lines = trends.series(trends.read_runs(path))
    assert list(lines) == [("test_ha_story", "time_to_recovery")]  # heal is not trended
    assert [(i, m.value_s, m.verdict) for i, m in lines[("test_ha_story",
                                                         "time_to_recovery")]] == [
        (0, 15.0, "ok"), (1, 31.0, "outside_window+over_budget")]


def test_the_picture_and_the_global_attachment(tmp_path):
    path = tmp_path / "h.jsonl"
    runs = trends.append_run(path, "a", "r", [figure(15.0)])
    runs = trends.append_run(path, "b", "r", [figure(31.0)])
    png = trends.render(runs)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert trends.render([])[:8] == b"\x89PNG\r\n\x1a\n"  # nothing yet: still a picture
    trends.write_global_attachment(tmp_path / "allure", png, "recovery time across runs")
    (globals_file,) = (tmp_path / "allure").glob("*-globals.json")
    (attachment,) = json.loads(globals_file.read_text())["attachments"]
    assert attachment["name"] == "recovery time across runs"
    assert (tmp_path / "allure" / attachment["source"]).read_bytes() == png
