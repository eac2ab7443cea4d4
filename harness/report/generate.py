"""The offline HTML report from Allure results: `pvechaos report [RESULTS] [-o DIR]`, the
one place .ci/scenarios and people make it.

Allure 3 (npm ``allure``, installed by ``bash .ci/setup`` under .ci/allure) turns the
results into one self-contained page with the categories of .ci/allurerc.json; the
history file beside the output directory (``reports/history.jsonl`` for the default
``reports/html``) carries the trends from run to run; then the page is made truly
offline (harness/report/offline.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.errors import ConfigError, PvechaosError
from harness.report.offline import make_offline

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".ci" / "allurerc.json"
LOCAL_ALLURE = REPO / ".ci" / "allure" / "node_modules" / ".bin" / "allure"
SETUP = "run bash .ci/setup (it installs Allure 3 with npm under .ci/allure)"
HISTORY = "history.jsonl"  # beside the output directory: trends from run to run
TIMEOUT_S = 600.0  # a generator that hangs ends the command


def find_allure() -> str:
    """The Allure 3 generator: this checkout's (.ci/setup), else ``allure`` on PATH."""
    if os.access(LOCAL_ALLURE, os.X_OK):
        return str(LOCAL_ALLURE)
    found = shutil.which("allure")
    if found is None:
        raise ConfigError("no Allure report generator found (neither "
                          f"{LOCAL_ALLURE.relative_to(REPO)} nor `allure` on PATH)",
                          hint=SETUP)
    return found


def check(results: Path, out: Path) -> None:
    """Refuse bad paths before the generator runs."""
    if not results.is_dir():
        raise ConfigError(f"results directory {results} does not exist",
                          hint="give the --alluredir of a pytest run, e.g. "
                               "pvechaos report reports/allure-results")
    if not any(results.glob("*-result.json")):
        raise ConfigError(f"{results} holds no Allure results (no *-result.json)",
                          hint="run pytest with --alluredir first, and give that directory")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} is a file, not a directory",
                          hint="give a directory with -o, e.g. -o reports/html")
    if out.resolve() == results.resolve():
        raise ConfigError(f"output {out} is the results directory",
                          hint="give another directory with -o, e.g. -o reports/html")


def allure_config(out: Path, base: Path = CONFIG) -> dict:
    """.ci/allurerc.json (its categories and single-file page) writing to ``out``, with
    the history beside it."""
    try:
        config = json.loads(base.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the report's Allure configuration {base}: {exc}",
                          hint="run from a pvechaos checkout (it holds .ci/allurerc.json)"
                          ) from None
    out = out.absolute()
    return {**config, "output": str(out), "historyPath": str(out.parent / HISTORY)}


def generate(results: Path, out: Path, *, allure: str | None = None,
             config: Path = CONFIG) -> Path:
    """Make ``out``/index.html from ``results``; returns the page. The old ``out`` is
    replaced; the history is ``out``'s sibling history.jsonl."""
    check(results, out)
    settings = allure_config(out, config)
    generator = allure or find_allure()
    if out.exists():
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory(prefix="pvechaos-report-") as tmp:
        rc = Path(tmp) / "allurerc.json"
        rc.write_text(json.dumps(settings, indent=1))
        argv = [generator, "generate", str(results), "--config", str(rc), "-o", str(out)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise PvechaosError(f"Allure did not finish within {TIMEOUT_S:g} s") from exc
    page = out / "index.html"
    if done.returncode != 0 or not page.is_file():
        said = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise PvechaosError(f"Allure could not generate the report (exit {done.returncode}): "
                            + " / ".join(said), hint=f"check the results, or {SETUP}")
    page.write_text(make_offline(page.read_text(encoding="utf-8")), encoding="utf-8")
    return page
