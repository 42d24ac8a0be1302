"""The result of the checks before a port or stage: what was checked, and every problem found.

Each problem names the spec field it is about (``targets[1].disk.connector``) and says what is wrong
in one line. ``Checks`` collects them: ``with checks.of(field, "what is checked"):`` records the
check, and an ``ImageportError`` raised inside becomes that field's problem instead of stopping the
rest -- so one run lists everything at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pydantic import Field

from imageport.errors import ImageportError, InputError
from imageport.models.vocabulary import _Model
from imageport.names import one_line


class Problem(_Model):
    """One thing that would make the run fail, and the spec field it is about."""

    field: str = Field(description="Dotted spec field, e.g. 'targets[0].disk.connector'.")
    message: str = Field(description="What is wrong, in one line.")

    @property
    def line(self) -> str:
        return f"{self.field}: {self.message}"


class Checked(_Model):
    """One check that was made, and its outcome."""

    field: str
    check: str = Field(description="What was checked, e.g. \"connector 'port-az' logs in\".")
    problem: str | None = Field(default=None, description="Why it failed; None when it passed.")


class CheckReport(_Model):
    """Every check made before the run, and every problem found (in the order checked)."""

    checked: list[Checked] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def summary(self) -> str:
        checks, problems = len(self.checked), len(self.problems)
        return f"{checks} check{'s' * (checks != 1)}, {problems} problem{'s' * (problems != 1)}"

    def raise_problems(self, what: str) -> None:
        """An ``InputError`` listing every problem, one line each (nothing happens when there are none)."""
        if self.problems:
            lines = "\n".join(f"  {p.line}" for p in self.problems)
            raise InputError(f"{what}: {self.summary} found before anything was created:\n{lines}")


class Checks:
    """Collects checks and problems while the checks run; ``report()`` freezes them."""

    def __init__(self) -> None:
        self._checked: list[Checked] = []
        self._problems: list[Problem] = []

    def passed(self, field: str, check: str) -> None:
        self._checked.append(Checked(field=field, check=check))

    def problem(self, field: str, check: str, message: str) -> None:
        message = one_line("; ".join(line.strip() for line in message.splitlines() if line.strip()))
        if not any(p.field == field and p.message == message for p in self._problems):  # said once
            self._problems.append(Problem(field=field, message=message))
        self._checked.append(Checked(field=field, check=check, problem=message))

    @contextlib.contextmanager
    def of(self, field: str, check: str) -> Iterator[None]:
        """Record ``check`` on ``field``: passed, or the problem an ``ImageportError`` inside names."""
        try:
            yield
        except ImageportError as exc:
            self.problem(field, check, str(exc))
        else:
            self.passed(field, check)

    def report(self) -> CheckReport:
        return CheckReport(checked=list(self._checked), problems=list(self._problems))
