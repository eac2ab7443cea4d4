"""The kinds of failure a chaos run can end in, each its own exception class, so that a
report files it under its own category (Allure matches the class name in the message).

- ``InvariantBroken``: a safety invariant broke (two copies of a guest, a start without
  quorum, a guest alive after its fence, a lost write);
- ``BudgetExceeded``: recovery took longer than the user's budget;
- ``OutsideWindow``: a figure lies outside the window PVE's design predicts: HA did not
  behave as designed;
- ``QuorumAssertion``: a quorum check failed (membership, quorate, `pvecm expected`);
- a lab or infrastructure error (``harness.errors.LabError`` and every other error that is
  not an assertion) is "broken", never a product failure.
Any other failed assertion is a product defect of no particular kind.
"""

from __future__ import annotations

import re


class Finding(AssertionError):
    """A product failure of a known kind."""


class InvariantBroken(Finding):
    pass


class BudgetExceeded(Finding):
    pass


class OutsideWindow(Finding):
    pass


class QuorumAssertion(Finding):
    pass


LAB_ERROR = "Lab or infrastructure error"

# Allure categories, first match wins. The keys are Allure 2's categories.json keys, which
# Allure 3 reads from its config file as well (matchedStatuses, messageRegex).
CATEGORIES: list[dict[str, object]] = [
    {"name": "Safety invariant broken", "matchedStatuses": ["failed"],
     "messageRegex": r"[\s\S]*InvariantBroken[\s\S]*"},
    {"name": "Recovery budget exceeded", "matchedStatuses": ["failed"],
     "messageRegex": r"[\s\S]*BudgetExceeded[\s\S]*"},
    {"name": "Behaviour outside PVE's predicted window", "matchedStatuses": ["failed"],
     "messageRegex": r"[\s\S]*OutsideWindow[\s\S]*"},
    {"name": "Quorum assertion", "matchedStatuses": ["failed"],
     "messageRegex": r"[\s\S]*QuorumAssertion[\s\S]*"},
    {"name": LAB_ERROR, "matchedStatuses": ["broken"]},
]


def category_of(result: dict, categories: list[dict[str, object]] = CATEGORIES) -> str | None:
    """The category Allure files one of its result documents under, judged as Allure
    judges it: the first category whose statuses include the result's and whose message
    regex is found in the result's message (None: no harness category)."""
    message = (result.get("statusDetails") or {}).get("message") or ""
    for rule in categories:
        if result.get("status") not in rule["matchedStatuses"]:  # type: ignore[operator]
            continue
        regex = rule.get("messageRegex")
        if regex is None or re.search(str(regex), message):
            return str(rule["name"])
    return None
