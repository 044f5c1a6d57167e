"""One check result: a name, a state (ok; warn: passes with something to look at; skip: could
not be checked, as when the hub does not answer, so it does not pass; fail) and
what was found. The preflight (--check), the data report, the smoke run's checklist and the
token check all give these; one renderer writes them as console lines. Imports nothing of the
pipeline, so that hub/, preflight/ and cli/ can all use it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

State = Literal["ok", "warn", "skip", "fail"]
OK: State = "ok"
WARN: State = "warn"
FAIL: State = "fail"
SKIP: State = "skip"
STATES = (OK, WARN, SKIP, FAIL)
MARKS = {OK: "ok", WARN: "warn", SKIP: "skip", FAIL: "FAIL"}  # as the console shows them
SMOKE_MARKS = {OK: "pass", WARN: "warn", SKIP: "skip", FAIL: "FAIL"}  # the smoke checklist's


@dataclass(frozen=True)
class Check:
    name: str  # "" for a line that only says what was found
    state: State
    detail: str = ""

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"a check's state is one of {STATES}, not {self.state!r}")

    @classmethod
    def of(cls, name: str, ok: bool, detail: str = "", warning: bool = False) -> Check:
        """From a pass/fail answer; a pass with `warning` is a warn."""
        return cls(name, FAIL if not ok else (WARN if warning else OK), detail)

    @property
    def ok(self) -> bool:
        """Passes (a warning passes too; what could not be checked does not)."""
        return self.state in (OK, WARN)

    @property
    def warning(self) -> bool:
        return self.state == WARN

    @property
    def mark(self) -> str:
        return MARKS[self.state]

    @property
    def text(self) -> str:
        """`name: detail`, or the detail alone for a check with no name."""
        return f"{self.name}: {self.detail}" if self.name else self.detail


def passed(checks: Iterable[Check]) -> bool:
    return all(check.ok for check in checks)


def render_line(check: Check, marks: dict[str, str] = MARKS, named: bool = True) -> str:
    """One check as a console line: `[ok  ] name: detail` (without the name: `[ok  ] detail`,
    for a detail that says what it is about)."""
    return f"[{marks[check.state]:<4}] {check.text if named else check.detail}"


def render(checks: Iterable[Check], marks: dict[str, str] = MARKS, named: bool = True) -> str:
    """Checks as console lines, one a check."""
    return "\n".join(render_line(check, marks, named) for check in checks)


def summary(checks: list[Check]) -> str:
    """`N of M checks passed (K with warnings)`."""
    failed = sum(1 for check in checks if not check.ok)
    warned = sum(1 for check in checks if check.warning)
    warnings = f" ({warned} with warnings)" if warned else ""
    return f"{len(checks) - failed} of {len(checks)} checks passed{warnings}"
