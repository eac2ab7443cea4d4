"""Make the generated HTML report truly offline: Allure 3's report page loads Google
Analytics from the network (its template always includes it). A report read on an
air-gapped runner, or mailed with a bug, must not reach out anywhere: the remote script
and its inline set-up are removed. Everything else in the page is local.

    python3 -m harness.report.offline reports/html/index.html
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>",
                            re.IGNORECASE)
_GTAG = re.compile(r"<script>\s*window\.dataLayer[\s\S]*?</script>", re.IGNORECASE)


def make_offline(html: str) -> str:
    return _GTAG.sub("", _REMOTE_SCRIPT.sub("", html))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python3 -m harness.report.offline REPORT.html", file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        path.write_text(make_offline(path.read_text(encoding="utf-8")), encoding="utf-8")
    except OSError as exc:
        print(f"cannot rewrite {path}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
