"""The result one compat suite hands to ``python -m compat``'s table."""

from __future__ import annotations

import attrs


@attrs.frozen
class SuiteResult:
    """Counts and a human-readable account of one suite against one target."""

    passed: int
    failed: int
    details: str = ""
    skipped: int = 0
    errors: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed" + (
            f", {self.errors} errors" if self.errors else ""
        )
