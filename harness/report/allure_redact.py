"""The last line of redaction: everything allure-pytest writes to ``--alluredir`` passes
harness/report/redact.py's rules on its way to disk.

The harness redacts what it makes (evidence, step titles, fault records, its errors,
pytest's reports), but a scenario is a user's code: its own ``allure.attach``, its own
``allure.step`` titles and parameters, an exception of its own whose message Allure
quotes. allure-pytest hands all of them to one writer, ``AllureFileLogger``, which it
builds in its ``pytest_configure``; this module is a plugin of the harness's
(harness/plugin.py) whose own ``pytest_configure`` runs first and has it build this
subclass instead, which redacts every string of a result or container
and every attachment that is text. A binary attachment (a PNG) is written as it is.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path

import pytest
from allure_commons import hookimpl
from allure_commons.logger import INDENT, AllureFileLogger
from attr import asdict

from harness.report.redact import redact, redact_tree


class RedactingFileLogger(AllureFileLogger):
    """AllureFileLogger with every string it writes redacted."""

    def _report_item(self, item) -> None:
        # the base's method with redact_tree between attrs' asdict (a deep copy: the
        # reporter's own objects keep their text) and the JSON dump; same file names,
        # same atomic rename
        indent = INDENT if os.environ.get("ALLURE_INDENT_OUTPUT") else None
        filename = item.file_pattern.format(prefix=uuid.uuid4())
        data = redact_tree(asdict(item, filter=lambda _, v: v or v is False))
        tmp = self._report_dir / f"{filename}.tmp"
        with open(tmp, "w", encoding="utf8") as out:
            json.dump(data, out, indent=indent, ensure_ascii=False)
        os.replace(tmp, self._report_dir / filename)

    @hookimpl  # an override is a hook implementation only when marked again
    def report_attached_data(self, body, file_name) -> None:
        super().report_attached_data(redact_body(body), file_name)

    @hookimpl
    def report_attached_file(self, source, file_name) -> None:
        data = Path(source).read_bytes()
        clean = redact_body(data)
        if clean is data:
            super().report_attached_file(source, file_name)
            return
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "attachment"
            copy.write_bytes(clean)
            super().report_attached_file(copy, file_name)


def redact_body(body: str | bytes) -> str | bytes:
    """``body`` redacted when it is text (str, or bytes that decode as UTF-8); other
    bytes as they are (the same object)."""
    if isinstance(body, str):
        return redact(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    clean = redact(text)
    return body if clean == text else clean.encode("utf-8")


def install() -> None:
    """allure-pytest builds RedactingFileLogger for ``--alluredir``: call before its
    ``pytest_configure`` (harmless twice)."""
    import allure_pytest.plugin as allure_plugin

    allure_plugin.AllureFileLogger = RedactingFileLogger


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    install()  # before allure-pytest's own pytest_configure builds its writer
