"""`pvechaos report`: the paths are checked before Allure runs; Allure gets the repository's
categories with the output and history where asked; the page comes out offline."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from harness.errors import ConfigError, PvechaosError
from harness.report import generate

FAKE_ALLURE = """#!/bin/sh
# generate RESULTS --config RC -o OUT: keeps its argv and config, writes a page that
# loads a remote script as Allure 3's template does
[ "$1" = generate ] || exit 9
out="$6"; mkdir -p "$out"
printf '%s\\n' "$@" > "$out/../argv.txt"
cp "$4" "$out/../config.json"
echo '<html><script src="https://www.googletagmanager.com/gtag/js"></script>' > "$out/index.html"
echo '<p>ok</p></html>' >> "$out/index.html"
"""


@pytest.fixture
def results(tmp_path) -> Path:
    path = tmp_path / "allure-results"
    path.mkdir()
    (path / "0-result.json").write_text("{}")
    return path


def fake(tmp_path: Path, text: str = FAKE_ALLURE) -> str:
    path = tmp_path / "allure"
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_the_page_is_made_offline_with_the_repository_categories(tmp_path, results):
    out = tmp_path / "reports" / "html"
    page = generate.generate(results, out, allure=fake(tmp_path))
    assert page == out / "index.html"
    html = page.read_text()
    assert "<p>ok</p>" in html and "googletagmanager" not in html
    argv = (out.parent / "argv.txt").read_text().split()
    assert argv[:2] == ["generate", str(results)] and argv[-2:] == ["-o", str(out)]
    config = json.loads((out.parent / "config.json").read_text())
    shipped = json.loads(generate.CONFIG.read_text())
    assert config["categories"] == shipped["categories"]
    assert config["output"] == str(out.absolute())
    assert config["historyPath"] == str(out.absolute().parent / "history.jsonl")


def test_an_old_report_is_replaced(tmp_path, results):
    out = tmp_path / "html"
    out.mkdir()
    (out / "stale.html").write_text("old")
    generate.generate(results, out, allure=fake(tmp_path))
    assert not (out / "stale.html").exists()


@pytest.mark.parametrize(("case", "said"), [
    ("missing", "does not exist\n  fix: give the --alluredir of a pytest run"),
    ("empty", "holds no Allure results (no *-result.json)"),
    ("out-file", "is a file, not a directory\n  fix: give a directory with -o"),
    ("out-same", "is the results directory"),
])
def test_bad_paths_are_refused_before_allure_runs(tmp_path, results, case, said):
    out = tmp_path / "html"
    given = results
    if case == "missing":
        given = tmp_path / "none"
    elif case == "empty":
        given = tmp_path / "empty"
        given.mkdir()
    elif case == "out-file":
        out.write_text("")
    elif case == "out-same":
        out = results
    with pytest.raises(ConfigError) as info:
        generate.generate(given, out, allure=fake(tmp_path, "#!/bin/sh\nexit 99\n"))
    assert said in str(info.value)


def test_allure_failing_is_named_with_what_it_said(tmp_path, results):
    broken = fake(tmp_path, "#!/bin/sh\necho 'cannot parse results' >&2\nexit 3\n")
    with pytest.raises(PvechaosError) as info:
        generate.generate(results, tmp_path / "html", allure=broken)
    assert "Allure could not generate the report (exit 3): cannot parse results" in str(
        info.value)


def test_no_generator_names_the_setup(monkeypatch, tmp_path):
    monkeypatch.setattr(generate, "LOCAL_ALLURE", tmp_path / "none" / "allure")
    monkeypatch.setattr(generate.shutil, "which", lambda name: None)
    monkeypatch.setattr(generate, "REPO", tmp_path)
    with pytest.raises(ConfigError) as info:
        generate.find_allure()
    assert "no Allure report generator found" in str(info.value)
    assert "fix: run bash .ci/setup" in str(info.value)


def test_ci_makes_the_report_with_the_same_command():
    script = (Path(__file__).resolve().parents[2] / ".ci" / "scenarios").read_text()
    assert "python3 -m lab.cli report reports/allure-results -o reports/html" in script
    assert "allure generate" not in script and "harness.report.offline" not in script
