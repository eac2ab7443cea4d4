"""PVE's text tables (PVE::CLIFormatter::print_text_table), as `ha-manager rules` and
`pvesh` print them."""

from __future__ import annotations

import json
import locale


def text_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """PVE::CLIFormatter::print_text_table with borders and header, rows sorted by the
    first column. Guess: without the API's schema every column is a string (left
    aligned), except int values, which PVE's schemas declare as integers (right aligned).
    UTF-8 box characters when the locale's codeset is UTF-8, else ASCII."""
    if not rows:
        return ""
    if columns is None:
        columns = sorted({k for r in rows for k in r})
    rows = sorted(rows, key=lambda r: (r.get(columns[0]) is None, str(r.get(columns[0]))
                                       if not isinstance(r.get(columns[0]), int)
                                       else f"{r[columns[0]]:020d}"))

    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, dict | list):
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        return str(value)

    numeric = {c: all(isinstance(r.get(c), int) and not isinstance(r.get(c), bool)
                      for r in rows if r.get(c) is not None) and
               any(r.get(c) is not None for r in rows) for c in columns}
    width = {c: max([len(c)] + [len(cell(r.get(c))) for r in rows]) for c in columns}
    utf8 = "UTF-8" in (locale.getpreferredencoding(False) or "").upper().replace("UTF8",
                                                                                  "UTF-8")

    def line(values: list[str], align: bool) -> str:
        parts = []
        for c, v in zip(columns, values, strict=True):
            parts.append(v.rjust(width[c]) if align and numeric[c] else v.ljust(width[c]))
        bar = "│" if utf8 else "|"
        return f"{bar} " + f" {bar} ".join(parts) + f" {bar}"

    def border(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (width[c] + 2) for c in columns) + right

    if utf8:
        top, head, mid, bottom = (border("┌", "─", "┬", "┐"), border("╞", "═", "╪", "╡"),
                                  border("├", "─", "┼", "┤"), border("└", "─", "┴", "┘"))
    else:
        top = mid = bottom = border("+", "-", "+", "+")
        head = border("+", "=", "+", "+")
    out = [top, line(columns, False), head]
    for i, r in enumerate(rows):
        if i:
            out.append(mid)
        out.append(line([cell(r.get(c)) for c in columns], True))
    out.append(bottom)
    return "\n".join(out) + "\n"
