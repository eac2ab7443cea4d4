"""Reading the messages of a refused config file in tests."""

from __future__ import annotations


def fix_for(text: str, message: str) -> str:
    """The fix given for the problem whose text contains ``message``."""
    assert message in text
    after = text[text.index(message):]
    assert "fix: " in after, text
    return after.partition("fix: ")[2].partition("\n")[0]
